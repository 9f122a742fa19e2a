"""``opsloop-render``: write the rule files and dashboards for a thresholds file.

    opsloop-render [--thresholds FILE] [--out DIR] [--prometheus-rule FILE [--namespace NS]] [--check]

``--thresholds`` is merged over the packaged defaults. ``--check`` writes nothing and exits 1 when a
file below ``--out`` differs from a fresh render (what CI runs on the committed files).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from opsloop.render.output import ALERTS_FILE, RECORDS_FILE, render_all, write_all
from opsloop.render.prometheusrule import prometheus_rule
from opsloop.render.thresholds import load_thresholds

from opsloop.configfile import ConfigError
from opsloop.logs import FORMATS, LEVELS, setup_logging

log = logging.getLogger("opsloop.render")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="opsloop-render", description=__doc__.splitlines()[0])
    parser.add_argument("--thresholds", type=Path, help="thresholds file merged over the defaults")
    parser.add_argument("--out", type=Path, default=Path("."), help="directory to write rules/ and dashboards/ in")
    parser.add_argument("--prometheus-rule", type=Path, help="also write the rules as a Kubernetes PrometheusRule")
    parser.add_argument("--namespace", help="metadata.namespace of the PrometheusRule")
    parser.add_argument("--check", action="store_true", help="compare with the files in --out, write nothing")
    parser.add_argument("--log.level", dest="log_level", choices=LEVELS, default="info")
    parser.add_argument("--log.format", dest="log_format", choices=FORMATS, default="logfmt")
    return parser.parse_args(argv)


def stale_files(files: dict[str, str], out: Path) -> list[str]:
    """Relative paths whose file below ``out`` is missing or differs from ``files``."""
    stale = []
    for rel, text in files.items():
        path = out / rel
        if not path.is_file() or path.read_text() != text:
            stale.append(rel)
    return stale


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    try:
        thresholds = load_thresholds(args.thresholds)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("invalid thresholds", extra={"file": exc.path, "problem": problem})
        return 2
    files = render_all(thresholds)
    if args.check:
        stale = stale_files(files, args.out)
        for rel in stale:
            log.error("rendered file is out of date", extra={"file": rel})
        return 1 if stale else 0
    for path in write_all(files, args.out):
        log.info("wrote", extra={"file": str(path)})
    if args.prometheus_rule:
        text = prometheus_rule([files[ALERTS_FILE], files[RECORDS_FILE]], namespace=args.namespace)
        args.prometheus_rule.parent.mkdir(parents=True, exist_ok=True)
        args.prometheus_rule.write_text(text)
        log.info("wrote", extra={"file": str(args.prometheus_rule)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
