"""Command line: ``opsloop-exporter --config.file FILE [--web.listen-address HOST:PORT ...] [--check-config]``."""

from __future__ import annotations

import asyncio
import logging
import sys

from opsloop.exporter.app import create_app
from opsloop.exporter.config import ExporterConfig, load_config
from opsloop.exporter.memory import fix_mmap_threshold
from opsloop.exporter.sources import build_sources

from opsloop.cli import parse_service_args, report_problems
from opsloop.configfile import ConfigError
from opsloop.listen import serve_with
from opsloop.logs import setup_logging
from opsloop.webconfig import WebConfigError
from opsloop.webguard import WebGuard

DEFAULT_LISTEN = ":9817"
log = logging.getLogger("opsloop.exporter")


def idle_warning(config: ExporterConfig) -> str | None:
    """Why this configuration exports nothing but the exporter's own health, if it does."""
    if build_sources(config):
        return None
    return "the configuration reads nothing: add queues, dlqs, workers, cache or business"


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
    idle = idle_warning(config)
    if args.check_config:
        if idle:
            print(f"{args.config}: warning: {idle}", file=sys.stderr)
        print(f"{args.config}: configuration is valid")
        return 0
    if idle:
        log.warning(idle, extra={"config": args.config})
    log.info("starting", extra={"listen": ",".join(args.listen), "config": args.config})
    fix_mmap_threshold()
    return asyncio.run(serve_with(create_app(config, args.telemetry_path, guard), args.listen, guard))


if __name__ == "__main__":
    sys.exit(main())
