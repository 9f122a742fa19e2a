"""Listen on every ``--web.listen-address`` and serve until SIGTERM or SIGINT.

Addresses are written the way Prometheus tools write them (``HOST:PORT``, ``[::1]:PORT``, ``:PORT``
for every interface). SIGHUP re-reads the ``--web.config.file``. A port that cannot be bound ends the
program with one log line and exit status 1, not a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from aiohttp import web

from opsloop.webguard import WebGuard

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


async def serve(app: web.Application, addresses: list[str], guard: WebGuard) -> int:
    """Run ``app`` on ``addresses`` behind ``guard``; return the exit status."""
    guard.install(app)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, guard.refresh, True)
    try:
        for address in addresses:
            host, port = parse_listen_address(address)
            site = web.TCPSite(runner, host, port, ssl_context=guard.server_context())
            try:
                await site.start()
            except OSError as exc:
                log.error("cannot listen", extra={"address": address, "error": exc.strerror or str(exc)})
                return 1
            log.info("listening", extra={"address": address, "tls": guard.tls})
        await stop.wait()
        log.info("shutting down")
        return 0
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
