"""The defaults the docs state are the configuration models' defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from opsloop.receiver.config import WorkerConfig

from opsloop.durations import parse_duration

DOCS = Path(__file__).resolve().parents[2] / "docs"
ROW = re.compile(r"^\|\s*(`worker\.[^|]+)\|\s*([^|]+)\|")


def documented_worker_defaults(doc: Path) -> dict[str, str]:
    """``| `worker.a`, `b` | `3`, `1s` | ...`` rows -> {"a": "3", "b": "1s"}."""
    found: dict[str, str] = {}
    for line in doc.read_text().splitlines():
        match = ROW.match(line)
        if not match:
            continue
        keys = [k.strip().strip("`").removeprefix("worker.") for k in match.group(1).split(",")]
        values = [v.strip().strip("`") for v in match.group(2).split(",")]
        assert len(keys) == len(values), line
        found.update(zip(keys, values, strict=True))
    return found


@pytest.mark.parametrize("doc", ["notifications.md", "receiver.md"])
def test_documented_worker_defaults_match_the_model(doc: str) -> None:
    documented = documented_worker_defaults(DOCS / doc)
    assert {"delivery_attempts", "retry_base", "retry_cap"} <= documented.keys()
    for key, text in documented.items():
        stated = float(text) if text.isdigit() else parse_duration(text)
        assert stated == float(WorkerConfig.model_fields[key].default), f"{doc}: worker.{key}"


def test_notifications_doc_has_every_retry_setting() -> None:
    documented = documented_worker_defaults(DOCS / "notifications.md")
    retry_keys = {k for k in WorkerConfig.model_fields if "retr" in k or "attempt" in k or k == "give_up_after"}
    assert retry_keys <= documented.keys()
