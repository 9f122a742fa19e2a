"""Structured logs on stderr, one record a line: logfmt (the default, as Prometheus tools) or JSON.

Pass fields with ``extra``: ``log.info("scrape done", extra={"source": "redis/main", "seconds": 0.01})``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
LEVELS = ("debug", "info", "warn", "warning", "error")
FORMATS = ("logfmt", "json")
_BARE = re.compile(r'^[^\s"=\\]+$')


def _fields(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, object]:
    entry: dict[str, object] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": "warn" if record.levelno == logging.WARNING else record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for key, value in vars(record).items():
        if key not in _STANDARD and not key.startswith("_"):
            entry[key] = value
    if record.exc_info:
        entry["exc"] = formatter.formatException(record.exc_info)
    return entry


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record, self), default=str)


def logfmt_value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if _BARE.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={logfmt_value(value)}" for key, value in _fields(record, self).items())


def setup_logging(level: str = "info", fmt: str = "logfmt") -> None:
    """Route every logger to stderr at ``level`` (one of LEVELS) in ``fmt`` (one of FORMATS)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel("WARNING" if level == "warn" else level.upper())
