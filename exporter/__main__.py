"""Command line: ``opsloop-exporter --config.file FILE [--web.listen-address HOST:PORT ...] [--check-config]``."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING

from opsloop.exporter.app import create_app
from opsloop.exporter.config_snapshot import load_validated
from opsloop.exporter.memory import fix_mmap_threshold
from opsloop.exporter.sources import build_sources

from opsloop.cli import parse_service_args, print_problems
from opsloop.listen import serve_with
from opsloop.logs import setup_logging
from opsloop.snapshot import SnapshotError
from opsloop.webguard import WebGuard
from opsloop.webtls import WebConfigError, load_in_child

if TYPE_CHECKING:
    from opsloop.exporter.config import ExporterConfig

DEFAULT_LISTEN = ":9817"
log = logging.getLogger("opsloop.exporter")


def idle_warning(config: ExporterConfig) -> str | None:
    """Why this configuration exports nothing but the exporter's own health, if it does."""
    if build_sources(config):
        return None
    return "the configuration reads nothing: add queues, dlqs, workers, cache or business"


def web_guard(path: str) -> WebGuard | None:
    """The guard for ``--web.config.file``, or None when the file cannot be used."""
    if not path:
        return WebGuard(None)
    try:
        # Read in a child process, as the configuration is: pydantic stays out of this one.
        return WebGuard(path, read=load_in_child)
    except WebConfigError:
        return None


def main(argv: list[str] | None = None) -> int:
    args = parse_service_args("opsloop-exporter", __doc__, DEFAULT_LISTEN, argv)
    setup_logging(args.log_level, args.log_format)
    try:
        # Validated in a child process: pydantic and the models stay out of this long-lived one.
        config, problems = load_validated(args.config)
    except SnapshotError as exc:
        log.error("cannot load the configuration", extra={"config": args.config, "error": str(exc)})
        return 1
    if config is None:
        return print_problems(args.config, problems)
    guard = web_guard(args.web_config)
    if guard is None:
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
