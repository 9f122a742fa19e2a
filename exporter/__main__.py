"""Command line: ``opsloop-exporter --config FILE [--web.listen-address HOST:PORT] [--check-config]``."""

from __future__ import annotations

import logging
import sys

from aiohttp import web
from opsloop.exporter.app import create_app
from opsloop.exporter.config import load_config

from opsloop.cli import parse_service_args, report_problems
from opsloop.configfile import ConfigError
from opsloop.listen import parse_listen_address
from opsloop.logs import setup_logging

DEFAULT_LISTEN = ":9817"
log = logging.getLogger("opsloop.exporter")


def main(argv: list[str] | None = None) -> int:
    args = parse_service_args("opsloop-exporter", __doc__, DEFAULT_LISTEN, argv)
    setup_logging(args.log_level)
    try:
        config = load_config(args.config)
        host, port = parse_listen_address(args.listen)
    except (ConfigError, ValueError) as exc:
        return report_problems(args.config, exc)
    if args.check_config:
        print(f"{args.config}: configuration is valid")
        return 0
    log.info("starting", extra={"listen": args.listen, "config": args.config})
    web.run_app(create_app(config), host=host, port=port, print=None, access_log=None, handle_signals=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
