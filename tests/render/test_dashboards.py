"""Dashboard colours come from the same numbers as the alerts, for the defaults and for overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opsloop.render.dashboards import overview, queues
from opsloop.render.thresholds import Thresholds, load_thresholds


def _steps(board: dict[str, Any]) -> dict[str, list[float | None]]:
    return {
        panel["title"]: [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]
        for panel in board["panels"]
    }


def _expected(t: Thresholds) -> dict[str, list[float | None]]:
    return {
        "Queue length": [None, t.queues.backlog.warning.threshold, t.queues.backlog.critical.threshold],
        "Oldest item age": [None, t.queues.oldest_age.warning.threshold, t.queues.oldest_age.critical.threshold],
        "DLQ length": [None, t.dlq.not_empty.threshold],
        "Cache hit ratio": [None, t.cache.hit_ratio_low.threshold],
        "Redis memory used": [None, t.cache.memory.warning.threshold, t.cache.memory.critical.threshold],
        "Redis PING time": [None, t.cache.slow.threshold],
        "Job failure ratio": [None, t.business.job_failures.max_ratio],
        "Job duration p95": [None, t.business.job_duration.threshold],
        "Business query result age": [None, t.sources.query_stale.threshold],
        "DLQ growth": [None, t.dlq.increasing.threshold],
        "Queue growth": [None, t.queues.not_draining.threshold],
    }


def _check(t: Thresholds) -> None:
    steps = {**_steps(overview(t)), **_steps(queues(t))}
    for title, values in _expected(t).items():
        assert steps[title] == values, title


def test_default_steps_equal_alert_thresholds() -> None:
    t = load_thresholds()
    _check(t)
    assert _steps(overview(t))["Queue length"] == [None, 50, 500]


def test_overridden_steps_follow_the_thresholds(tmp_path: Path) -> None:
    override = tmp_path / "mine.yaml"
    override.write_text(
        "queues:\n  backlog:\n    warning: {threshold: 7}\n    critical: {threshold: 70}\n"
        "cache:\n  memory:\n    warning: {threshold: 0.6}\n  slow: {threshold: 0.25}\n"
    )
    t = load_thresholds(override)
    _check(t)
    assert _steps(queues(t))["Queue length"] == [None, 7, 70]
    assert _steps(overview(t))["Redis PING time"] == [None, 0.25]


def test_queue_panels_are_shared_between_dashboards() -> None:
    t = load_thresholds()
    by_title = [{p["title"]: p for p in board["panels"]} for board in (overview(t), queues(t))]
    for title in ("Queue length", "Oldest item age", "DLQ length"):
        first, second = (dict(b[title], id=0, gridPos={}) for b in by_title)
        assert first == second, title


def test_another_scrape_job_name_reaches_variables_annotations_and_rules(tmp_path: Path) -> None:
    from opsloop.render.alerts import alert_groups

    override = tmp_path / "override.yaml"
    override.write_text("selector: 'job=\"shop-metrics\"'\n")
    t = load_thresholds(override)
    for board in (overview(t), queues(t)):
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert 'opsloop_exporter_build_info{job="shop-metrics"}' in variables["job"]["query"]
        assert 'job="shop-metrics"' in variables["instance"]["query"]
        assert 'job="shop-metrics"' in board["annotations"]["list"][0]["expr"]
    # the receiver's own alerts read its own scrape job (receiver.selector), not the exporter's
    exprs = [rule.expr for group in alert_groups(t) if group.name != "opsloop-receiver" for rule in group.rules]
    assert all('job="opsloop"' not in expr for expr in exprs)
    assert sum('job="shop-metrics"' in expr for expr in exprs) >= len(exprs) - 1  # all but the absence alert


def test_the_receiver_alerts_can_be_left_out_where_no_receiver_runs(tmp_path: Path) -> None:
    from opsloop.render.alerts import alert_groups

    names = [g.name for g in alert_groups(load_thresholds())]
    assert "opsloop-receiver" in names
    override = tmp_path / "override.yaml"
    override.write_text("receiver: {enabled: false}\n")
    assert [g.name for g in alert_groups(load_thresholds(override))] == [n for n in names if n != "opsloop-receiver"]
