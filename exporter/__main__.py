"""Command line: ``opsloop-exporter --config.file FILE [--web.listen-address HOST:PORT ...] [--check-config]``."""

from __future__ import annotations

import asyncio
import logging
import sys

from opsloop.exporter.app import create_app
from opsloop.exporter.config import load_config

from opsloop.cli import parse_service_args, report_problems
from opsloop.configfile import ConfigError
from opsloop.listen import serve
from opsloop.logs import setup_logging
from opsloop.webconfig import WebConfigError
from opsloop.webguard import WebGuard

DEFAULT_LISTEN = ":9817"
log = logging.getLogger("opsloop.exporter")


def main(argv: list[str] | None = None) -> int:
    args = parse_service_args("opsloop-exporter", __doc__, DEFAULT_LISTEN, argv)
    setup_logging(args.log_level, args.log_format)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return report_problems(args.config, exc)
    try:
        guard = WebGuard(args.web_config)
    except WebConfigError:
        return 1  # WebGuard logged the one line that says why
    if args.check_config:
        print(f"{args.config}: configuration is valid")
        return 0
    log.info("starting", extra={"listen": ",".join(args.listen), "config": args.config})
    return asyncio.run(serve(create_app(config, args.telemetry_path), args.listen, guard))


if __name__ == "__main__":
    sys.exit(main())
