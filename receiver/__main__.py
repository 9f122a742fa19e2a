"""``opsloop-receiver --config.file FILE [--web.listen-address HOST:PORT ...] [--processes N] [--check-config]``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys

from aiohttp import web
from opsloop.receiver.app import Components, build_app
from opsloop.receiver.config import DEFAULT_LISTEN, ReceiverConfig, load_config
from opsloop.receiver.processes import (
    MAX_PROCESSES,
    METRICS_ENV,
    ParentLink,
    Supervisor,
    processes_flag,
    processes_problem,
)
from opsloop.receiver.store import StoreUnavailable

from opsloop.cli import parse_service_args, print_problems, report_problems
from opsloop.configfile import ConfigError
from opsloop.listen import serve
from opsloop.logs import setup_logging
from opsloop.webguard import WebGuard
from opsloop.webtls import WebConfigError

log = logging.getLogger("opsloop.receiver")


def idle_warning(config: ReceiverConfig) -> str | None:
    """Why this configuration would accept alerts and do nothing with them, if it would."""
    if config.routes or config.recovery:
        return None
    return "no routes and no recovery plans: alerts are stored and nobody hears of them"


async def freeze_startup_heap(app: web.Application) -> None:
    """Leave what start-up built (modules, config, templates, the open store) out of later collections.

    A full (generation 2) collection walks every tracked object and holds the GIL while it does: over the
    start-up heap that took 100-160 ms, every few seconds under load, and stalled every acknowledgement
    in flight (the event loop and the store's writer thread alike). Runs after the app's start-up.
    """
    gc.collect()
    gc.freeze()


def service_app(config: ReceiverConfig, components: Components, telemetry_path: str) -> web.Application:
    """The app as the service runs it: ``build_app`` plus what only a whole process wants."""
    app = build_app(config, components, telemetry_path)
    app.on_startup.append(freeze_startup_heap)  # after the lifecycle's start-up: the store is open
    return app


def receiver_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--processes", type=processes_flag, default=1,
        help=f"run the receiver as this many processes on the same addresses, to use more than one core "
        f"(1 to {MAX_PROCESSES}; above 1 needs a PostgreSQL store)",
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_service_args("opsloop-receiver", __doc__, DEFAULT_LISTEN, argv, receiver_flags)
    setup_logging(args.log_level, args.log_format)
    link = ParentLink.from_env()  # None unless started by a receiver run with --processes
    try:
        config = load_config(args.config)
        components = Components.build(config, os.environ.get(METRICS_ENV) if link else None)
    except (ConfigError, ValueError) as exc:  # ValueError: an unreadable secret or a bad template
        return report_problems(args.config, exc)
    problem = processes_problem(args.processes, config.store)
    if problem:
        asyncio.run(components.close())
        return print_problems(args.config, [problem])
    try:
        guard = WebGuard(args.web_config)
    except WebConfigError:
        asyncio.run(components.close())
        return 1  # WebGuard logged the one line that says why
    idle = idle_warning(config)
    if args.check_config:
        asyncio.run(components.close())
        if idle:
            print(f"{args.config}: warning: {idle}", file=sys.stderr)
        print(f"{args.config}: configuration is valid ({len(config.routes)} routes, {len(config.recovery)} plans)")
        return 0
    if idle and link is None:  # said once, by the parent of several processes
        log.warning(idle, extra={"config": args.config})
    if args.processes > 1 and link is None:
        asyncio.run(components.close())  # built to check the secrets: the processes build their own
        return asyncio.run(Supervisor(sys.argv[1:] if argv is None else argv, args.processes, args.listen).run())
    app = service_app(config, components, args.telemetry_path)
    try:
        return asyncio.run(serve(app, args.listen, guard, link is not None, link.ready if link else None))
    except StoreUnavailable as exc:
        log.error("cannot open the store", extra={"error": str(exc)})
        return 1


if __name__ == "__main__":
    sys.exit(main())
