"""``opsloop-receiver --config FILE [--web.listen-address HOST:PORT] [--check-config] [--log.level LEVEL]``."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from aiohttp import web
from opsloop.receiver.app import Components, build_app
from opsloop.receiver.config import DEFAULT_LISTEN, ReceiverConfig, load_config
from opsloop.receiver.store import StoreUnavailable

from opsloop.cli import parse_service_args, report_problems
from opsloop.configfile import ConfigError
from opsloop.listen import parse_listen_address
from opsloop.logs import setup_logging

log = logging.getLogger("opsloop.receiver")


async def serve(config: ReceiverConfig, components: Components, host: str | None, port: int) -> None:
    runner = web.AppRunner(build_app(config, components), access_log=None, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await web.TCPSite(runner, host, port).start()
        log.info("listening", extra={"address": f"{host}:{port}"})
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = parse_service_args("opsloop-receiver", __doc__, DEFAULT_LISTEN, argv)
    setup_logging(args.log_level)
    try:
        config = load_config(args.config)
        host, port = parse_listen_address(args.listen)
        components = Components.build(config)
    except (ConfigError, ValueError) as exc:  # ValueError: an unreadable secret or a bad template
        return report_problems(args.config, exc)
    if args.check_config:
        asyncio.run(components.close())
        print(f"{args.config}: configuration is valid ({len(config.routes)} routes, {len(config.recovery)} plans)")
        return 0
    try:
        asyncio.run(serve(config, components, host, port))
    except StoreUnavailable as exc:
        log.error("cannot open the store", extra={"error": str(exc)})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
