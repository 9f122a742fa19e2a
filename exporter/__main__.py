"""Command line: ``opsloop-exporter --config FILE [--web.listen-address HOST:PORT] [--check-config]``."""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web

from exporter.app import create_app
from exporter.config import load_config
from opsloop.configfile import ConfigError
from opsloop.listen import parse_listen_address
from opsloop.logs import LEVELS, setup_logging

DEFAULT_LISTEN = ":9817"
log = logging.getLogger("exporter")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="opsloop-exporter", description=__doc__)
    parser.add_argument("--config", required=True, help="YAML configuration file")
    parser.add_argument(
        "--web.listen-address", dest="listen", default=DEFAULT_LISTEN,
        help=f"HOST:PORT to serve on (default {DEFAULT_LISTEN}: every interface, port 9817)",
    )  # fmt: skip
    parser.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    parser.add_argument("--log.level", dest="log_level", choices=LEVELS, default="info")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level)
    try:
        config = load_config(args.config)
        host, port = parse_listen_address(args.listen)
    except (ConfigError, ValueError) as exc:
        for problem in getattr(exc, "problems", [str(exc)]):
            print(f"{args.config}: {problem}", file=sys.stderr)
        return 1
    if args.check_config:
        print(f"{args.config}: configuration is valid")
        return 0
    log.info("starting", extra={"listen": args.listen, "config": args.config})
    web.run_app(create_app(config), host=host, port=port, print=None, access_log=None, handle_signals=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
