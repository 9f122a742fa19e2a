"""The command line both services share: the same flags, and config problems printed one per line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from opsloop.buildinfo import version_text
from opsloop.listen import listen_address_flag
from opsloop.logs import FORMATS, LEVELS


def parse_service_args(
    prog: str,
    description: str | None,
    default_listen: str,
    argv: list[str] | None,
    own_flags: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """The flags of both services, spelled as Prometheus tools spell them (see the README's table).

    ``own_flags`` adds the flags only one of the services has.
    """
    parser = argparse.ArgumentParser(
        prog=prog, description=description, allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config.file", "--config", dest="config", required=True, help="YAML configuration file")
    parser.add_argument(
        "--web.listen-address", dest="listen", action="append", type=listen_address_flag,
        help=f"HOST:PORT to serve on, :PORT for every interface; repeat for several (default {default_listen})",
    )  # fmt: skip
    parser.add_argument(
        "--web.config.file", dest="web_config", default="",
        help="exporter-toolkit web configuration file: TLS, basic auth, response headers",
    )  # fmt: skip
    parser.add_argument("--web.telemetry-path", dest="telemetry_path", default="/metrics", help="path of the metrics")
    parser.add_argument(
        "--check-config", action="store_true", help="validate the configuration and its secrets, then exit"
    )
    parser.add_argument("--log.level", dest="log_level", choices=LEVELS, default="info")
    parser.add_argument("--log.format", dest="log_format", choices=FORMATS, default="logfmt")
    parser.add_argument("--version", action="version", version=version_text(prog))
    if own_flags is not None:
        own_flags(parser)
    args = parser.parse_args(argv)
    if not args.telemetry_path.startswith("/"):
        parser.error("argument --web.telemetry-path: must start with /")
    args.listen = args.listen or [default_listen]
    return args


def report_problems(config_path: str, exc: Exception) -> int:
    """Print ``FILE: key.path: problem`` for each problem of a ConfigError (or the error itself); return 1."""
    return print_problems(config_path, getattr(exc, "problems", [str(exc)]))


def print_problems(config_path: str, problems: list[str]) -> int:
    """Print ``FILE: key.path: problem`` for each problem; return 1."""
    for problem in problems:
        print(f"{config_path}: {problem}", file=sys.stderr)
    return 1
