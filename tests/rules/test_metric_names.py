"""Rules and dashboards read only metrics the exporter's contract names, or series the rules record."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from opsloop.render.promql import metric_names

REPO = Path(__file__).resolve().parents[2]

# The exporter's metric contract (docs/metrics.md), restricted to what the rules and dashboards may read.
EXPORTER_METRICS = {
    "opsloop_queue_length",
    "opsloop_queue_oldest_age_seconds",
    "opsloop_queue_workers",
    "opsloop_queue_in_progress",
    "opsloop_queue_in_progress_overdue",
    "opsloop_queue_scheduled",
    "opsloop_stream_group_pending",
    "opsloop_stream_group_lag",
    "opsloop_dlq_length",
    "opsloop_dlq_oldest_age_seconds",
    "opsloop_workers",
    "opsloop_cache_hits_total",
    "opsloop_cache_misses_total",
    "opsloop_cache_evicted_keys_total",
    "opsloop_cache_expired_keys_total",
    "opsloop_cache_memory_used_bytes",
    "opsloop_cache_memory_max_bytes",
    "opsloop_cache_connected_clients",
    "opsloop_cache_ping_seconds",
    "opsloop_exporter_keyspace_hits_total",
    "opsloop_exporter_keyspace_misses_total",
    "opsloop_business_jobs_finished_total",
    "opsloop_business_job_duration_p95_seconds",
    "opsloop_source_up",
    "opsloop_source_scrape_duration_seconds",
    "opsloop_source_last_success_timestamp_seconds",
    "opsloop_source_errors_total",
    "opsloop_business_query_result_age_seconds",
    "opsloop_business_query_errors_total",
    "opsloop_keys_truncated",
    "opsloop_exporter_build_info",
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
