"""Rules and dashboards read only metrics the exporter's contract names, or series the rules record."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from opsloop.render.promql import metric_names
from opsloop.render.thresholds import load_thresholds

from opsloop.metric_contract import CONTRACT

REPO = Path(__file__).resolve().parents[2]

# The exporter's metric contract, and the business metrics the thresholds file names (they come from the
# example configuration's queries, not from the exporter's code).
THRESHOLDS = load_thresholds()
EXPORTER_METRICS = {metric.series for metric in CONTRACT} | {
    THRESHOLDS.business.job_failures.metric,
    THRESHOLDS.business.job_duration.metric,
}
# The receiver's own metrics its alerts read (its contract: docs/receiver.md, "Metrics").
RECEIVER_METRICS = {
    "opsloop_receiver_webhooks_total",
    "opsloop_receiver_oldest_pending_seconds",
    "opsloop_receiver_automation_paused",
    "opsloop_receiver_guard_trips_total",
}
PROMETHEUS_SERIES = {"up", "ALERTS"}


def dashboard_queries() -> list[str]:
    """Every PromQL text in the committed dashboards: targets, variables (inside label_values) and annotations."""
    queries = []
    for path in sorted((REPO / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        queries += [t["expr"] for panel in board["panels"] for t in panel["targets"]]
        queries += [a["expr"] for a in board["annotations"]["list"]]
        for var in board["templating"]["list"]:
            if var["type"] == "query":
                queries.append(re.fullmatch(r"label_values\((.*), *\w+\)", var["query"]).group(1))
    return queries


def test_rules_read_only_exporter_metrics_and_recorded_series(
    alert_rules: list[dict[str, Any]], record_rules: list[dict[str, Any]]
) -> None:
    recorded = {rule["record"] for rule in record_rules}
    used = {name for rule in alert_rules + record_rules for name in metric_names(rule["expr"])}
    assert used - EXPORTER_METRICS - RECEIVER_METRICS - recorded - PROMETHEUS_SERIES == set()
    assert recorded <= used | {n for q in dashboard_queries() for n in metric_names(q)}, "unused recording rule"


def test_dashboards_read_only_exporter_metrics_and_recorded_series(record_rules: list[dict[str, Any]]) -> None:
    recorded = {rule["record"] for rule in record_rules}
    used = {name for query in dashboard_queries() for name in metric_names(query)}
    assert used - EXPORTER_METRICS - recorded - PROMETHEUS_SERIES == set()
    assert {"redis:opsloop_cache_hit:ratio_rate5m", "opsloop_queue_length"} <= used


def documented_metrics() -> dict[str, list[tuple[str, set[str]]]]:
    """docs/metrics.md's tables: metric name -> (type, labels) of each row naming it; rows named by a
    pattern are left out, and a table that states its one label above it gives an empty set."""
    rows: dict[str, list[tuple[str, set[str]]]] = {}
    for line in (REPO / "docs" / "metrics.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = re.fullmatch(r"`(opsloop_[a-z0-9_]+)`", cells[0]) if line.startswith("|") else None
        if name is not None and len(cells) >= 3:
            labels = set(re.findall(r"`([a-z_]+)`", cells[2])) if cells[2].startswith("`") else set()
            rows.setdefault(name.group(1), []).append((cells[1], labels))
    return rows


def test_the_docs_tables_list_exactly_the_contract() -> None:
    documented = documented_metrics()
    assert set(documented) == {metric.series for metric in CONTRACT}
    for name, rows in documented.items():
        declared = [m for m in CONTRACT if m.series == name]
        assert {kind for kind, _ in rows} == {m.kind for m in declared}, name
        listed = [labels for _, labels in rows if labels]  # the cache table states its label above the table
        assert sorted(map(sorted, listed)) == sorted(sorted(m.labels) for m in declared) or not listed, name
