"""Listen on every ``--web.listen-address`` and serve until SIGTERM or SIGINT.

Addresses are written the way Prometheus tools write them (``HOST:PORT``, ``[::1]:PORT``, ``:PORT``
for every interface). SIGHUP re-reads the ``--web.config.file``. A port that cannot be bound ends the
program with one log line and exit status 1, not a traceback. The receiver serves an aiohttp
application (``serve``); the exporter its own small server (``serve_with``), so aiohttp is imported
only by the program that uses it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from opsloop.webguard import WebGuard

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("opsloop.web")


def parse_listen_address(value: str) -> tuple[str | None, int]:
    """``HOST:PORT``, ``[::1]:PORT`` or ``:PORT`` (every interface) -> (host or None, port)."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"expected HOST:PORT, [IPv6]:PORT or :PORT, got {value!r}")
    host = host.strip("[]")
    return (host or None), int(port_text)


def listen_address_flag(value: str) -> str:
    """argparse ``type=``: a bad address is a flag error, reported by argparse with the flag's name."""
    try:
        parse_listen_address(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return value


class Server(Protocol):
    """What ``serve_with`` runs: set up once, listen on each address, clean up at the end."""

    async def setup(self) -> None: ...

    async def listen(self, host: str | None, port: int, ssl_context: ssl.SSLContext | None) -> None:
        """Start listening; an address that cannot be bound raises OSError."""
        ...

    async def cleanup(self) -> None: ...


class AiohttpServer:
    """An aiohttp application behind the web config, as a ``Server``."""

    def __init__(self, app: web.Application, guard: WebGuard, reuse_port: bool = False) -> None:
        from aiohttp import web  # lazily: see the module docstring

        guard.install(app)
        self._web = web
        self._reuse_port = reuse_port or None
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)

    async def setup(self) -> None:
        await self.runner.setup()

    async def listen(self, host: str | None, port: int, ssl_context: ssl.SSLContext | None) -> None:
        site = self._web.TCPSite(self.runner, host, port, ssl_context=ssl_context, reuse_port=self._reuse_port)
        await site.start()

    async def cleanup(self) -> None:
        await self.runner.cleanup()


async def serve(
    app: web.Application,
    addresses: list[str],
    guard: WebGuard,
    reuse_port: bool = False,
    listening: Callable[[], None] | None = None,
) -> int:
    """Run the aiohttp ``app`` on ``addresses`` behind ``guard``; return the exit status.

    ``reuse_port`` lets processes of one receiver share the addresses (``SO_REUSEPORT``).
    """
    return await serve_with(AiohttpServer(app, guard, reuse_port), addresses, guard, listening)


async def serve_with(
    server: Server, addresses: list[str], guard: WebGuard, listening: Callable[[], None] | None = None
) -> int:
    """Run ``server`` on ``addresses`` until SIGTERM or SIGINT; return the exit status.

    ``listening`` is called once every address listens.
    """
    await server.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, guard.refresh, True)
    try:
        for address in addresses:
            host, port = parse_listen_address(address)
            try:
                await server.listen(host, port, guard.server_context())
            except OSError as exc:
                log.error("cannot listen", extra={"address": address, "error": exc.strerror or str(exc)})
                return 1
            log.info("listening", extra={"address": address, "tls": guard.tls})
        if listening is not None:
            listening()
        await stop.wait()
        log.info("shutting down")
        return 0
    finally:
        try:
            await server.cleanup()
        finally:  # not before: a second SIGTERM (a service manager signals every process of its unit, and
            # a receiver's parent passes SIGTERM on to its processes) must not cut the cleanup short
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            # nor, arriving late, turn the exit that follows into death by signal: the stop is under way
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
