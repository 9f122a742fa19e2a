"""What the issue asks of every alert, checked on the committed rule files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
THRESHOLD = re.compile(r"[<>]=?\s*([0-9.]+)\s*$")


def _by_name(alert_rules: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for rule in alert_rules:
        out.setdefault(rule["alert"], []).append(rule)
    return out


def test_the_issue_alerts_exist(alert_rules: list[dict[str, Any]]) -> None:
    severities = {(r["alert"], r["labels"]["severity"]) for r in alert_rules}
    assert {
        ("QueueBacklogHigh", "warning"),
        ("QueueBacklogHigh", "critical"),
        ("QueueOldestItemTooOld", "warning"),
        ("QueueNotDraining", "warning"),
        ("QueueNoWorkers", "critical"),
        ("DLQEntriesIncreasing", "critical"),
        ("DLQNotEmpty", "warning"),
        ("CacheHitRatioLow", "warning"),
        ("RedisMemoryHigh", "warning"),
        ("RedisMemoryHigh", "critical"),
        ("RedisEvictingKeys", "warning"),
        ("RedisSlow", "warning"),
        ("OpsloopSourceDown", "critical"),
        ("OpsloopExporterAbsent", "critical"),
        ("BusinessQueryFailing", "warning"),
        ("BusinessQueryStale", "warning"),
        ("JobFailureRateHigh", "critical"),
        ("JobDurationHigh", "warning"),
        ("OpsloopReceiverDown", "critical"),
        ("OpsloopReceiverAbsent", "critical"),
        ("OpsloopReceiverWebhooksFailing", "critical"),
        ("OpsloopReceiverDeliveryStuck", "critical"),
        ("OpsloopReceiverPlanBacklog", "warning"),
        ("OpsloopReceiverAutomationPaused", "warning"),
        ("OpsloopReceiverGuardTripped", "warning"),
    } <= severities


def test_annotations_and_labels_have_the_agreed_shape(alert_rules: list[dict[str, Any]]) -> None:
    for rule in alert_rules:
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url", "dashboard"}, rule["alert"]
        assert "{{" not in rule["annotations"]["summary"], rule["alert"]
        assert "{{" in rule["annotations"]["description"] or "absent(" in rule["expr"], rule["alert"]
        assert set(rule["labels"]) == {"severity"}
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        # the receiver's own alerts read its own scrape job; every other alert the exporter's
        selector = 'job="opsloop-receiver"' if rule["alert"].startswith("OpsloopReceiver") else 'job="opsloop"'
        assert selector in rule["expr"], rule["alert"]


def test_descriptions_use_only_labels_the_alert_carries(
    alert_rules: list[dict[str, Any]], alert_cases: list[dict[str, Any]]
) -> None:
    """Labels a description names must be among the exact labels its unit tests expect."""
    tested: dict[str, set[str]] = {}
    for case in alert_cases:
        for alert in case.get("exp_alerts") or []:
            tested.setdefault(case["alertname"], set(alert["exp_labels"]))
            tested[case["alertname"]] &= set(alert["exp_labels"])
    for rule in alert_rules:
        used = set(re.findall(r"\$labels\.(\w+)", rule["annotations"]["description"]))
        assert used <= tested[rule["alert"]], rule["alert"]


def test_runbook_anchors_exist(alert_rules: list[dict[str, Any]]) -> None:
    runbooks = (REPO / "docs" / "runbooks.md").read_text()
    anchors = {line[3:].strip().lower() for line in runbooks.splitlines() if line.startswith("## ")}
    for rule in alert_rules:
        url = rule["annotations"]["runbook_url"]
        assert url.startswith("https://github.com/opsloop/opsloop/blob/main/docs/runbooks.md#"), url
        assert url.rsplit("#", 1)[1] in anchors, rule["alert"]


def test_dashboard_links_point_at_rendered_dashboards(alert_rules: list[dict[str, Any]]) -> None:
    uids = {path.stem for path in (REPO / "dashboards").glob("*.json")}
    for rule in alert_rules:
        link = rule["annotations"]["dashboard"]
        assert link.startswith("http://localhost:3000/d/"), link
        assert link.rsplit("/", 1)[1] in uids, rule["alert"]


def test_warning_threshold_is_below_critical_in_every_tiered_alert(alert_rules: list[dict[str, Any]]) -> None:
    tiered = 0
    for name, rules in _by_name(alert_rules).items():
        by_severity = {r["labels"]["severity"]: r for r in rules}
        if {"warning", "critical"} <= set(by_severity) and name != "JobFailureRateHigh":
            warning, critical = (
                float(THRESHOLD.search(by_severity[s]["expr"]).group(1)) for s in ("warning", "critical")
            )
            assert warning < critical, name
            tiered += 1
    assert tiered == 3


@pytest.mark.parametrize("gauge", ["opsloop_queue_length", "opsloop_dlq_length"])
def test_gauges_are_never_treated_as_counters(
    gauge: str, alert_rules: list[dict[str, Any]], record_rules: list[dict[str, Any]]
) -> None:
    for rule in alert_rules + record_rules:
        for func in re.findall(rf"(\w+)\({gauge}\b", rule["expr"]):
            assert func in {"delta", "deriv"}, rule["expr"]


def test_rates_only_over_counters(alert_rules: list[dict[str, Any]], record_rules: list[dict[str, Any]]) -> None:
    for rule in alert_rules + record_rules:
        for metric in re.findall(r"\b(?:rate|irate|increase)\(([\w:]+)", rule["expr"]):
            assert metric.endswith("_total"), rule["expr"]


def test_recording_rules_follow_level_metric_operations(record_rules: list[dict[str, Any]]) -> None:
    names = [rule["record"] for rule in record_rules]
    assert "redis:opsloop_cache_hit:ratio_rate5m" in names
    for name in names:
        level, metric, operations = name.split(":")
        assert level, name
        assert metric.startswith("opsloop_"), name
        assert operations, name
