"""Everything the renderer writes, as relative path -> text, so the CLI and the drift test share it."""

from __future__ import annotations

import json
from pathlib import Path

from opsloop.render.alerts import alert_groups
from opsloop.render.dashboards import DASHBOARDS
from opsloop.render.records import record_groups
from opsloop.render.rules import rule_file
from opsloop.render.thresholds import Thresholds

ALERTS_FILE = "rules/opsloop-alerts.yml"
RECORDS_FILE = "rules/opsloop-records.yml"


def render_all(t: Thresholds) -> dict[str, str]:
    """The rule files and dashboards for ``t``, keyed by their path below the output directory."""
    files = {ALERTS_FILE: rule_file(alert_groups(t)), RECORDS_FILE: rule_file(record_groups(t))}
    for name, build in DASHBOARDS.items():
        files[f"dashboards/{name}"] = json.dumps(build(t), indent=2, ensure_ascii=False) + "\n"
    return files


def write_all(files: dict[str, str], out: Path) -> list[Path]:
    """Write ``files`` below ``out``; returns the paths written."""
    written = []
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
