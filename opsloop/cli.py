"""The command line both services share: the same flags, and config problems printed one per line."""

from __future__ import annotations

import argparse
import sys

from opsloop.logs import LEVELS


def parse_service_args(
    prog: str, description: str | None, default_listen: str, argv: list[str] | None
) -> argparse.Namespace:
    """``--config FILE [--web.listen-address HOST:PORT] [--check-config] [--log.level LEVEL]``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", required=True, help="YAML configuration file")
    parser.add_argument(
        "--web.listen-address", dest="listen", default=default_listen,
        help=f"HOST:PORT to serve on, :PORT for every interface (default {default_listen})",
    )  # fmt: skip
    parser.add_argument(
        "--check-config", action="store_true", help="validate the configuration and its secrets, then exit"
    )
    parser.add_argument("--log.level", dest="log_level", choices=LEVELS, default="info")
    return parser.parse_args(argv)


def report_problems(config_path: str, exc: Exception) -> int:
    """Print ``FILE: key.path: problem`` for each problem of a ConfigError (or the error itself); return 1."""
    for problem in getattr(exc, "problems", [str(exc)]):
        print(f"{config_path}: {problem}", file=sys.stderr)
    return 1
