"""Dashboard lint: the dashboard-linter rules that matter and Grafana's schema basics, on the committed files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

SELECTOR_FROM_THRESHOLDS = yaml.safe_load((Path(__file__).resolve().parents[2] / "rules/thresholds.yaml").read_text())[
    "selector"
]
DASHBOARDS = sorted((Path(__file__).resolve().parents[2] / "dashboards").glob("*.json"))
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SELECTOR = re.compile(r"\{([^}]*)\}")


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _targets(board: dict[str, Any]) -> list[tuple[str, str]]:
    return [(panel["title"], t["expr"]) for panel in board["panels"] for t in panel["targets"]]


@pytest.fixture(params=DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def board(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _load(request.param)


def test_both_dashboards_are_committed() -> None:
    assert [p.name for p in DASHBOARDS] == ["opsloop-overview.json", "opsloop-queues.json"]
    assert [_load(p)["uid"] for p in DASHBOARDS] == ["opsloop-overview", "opsloop-queues"]


def test_schema_basics(board: dict[str, Any]) -> None:
    assert re.fullmatch(r"[A-Za-z0-9_-]{8,40}", board["uid"])
    assert board["title"].startswith("opsloop / ")
    assert board["description"]
    assert board["schemaVersion"] >= 36
    assert board["tags"] == ["opsloop"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))


def test_datasource_variable_and_job_instance_queue_variables(board: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert list(variables) == ["datasource", "job", "instance", "queue", "framework"]
    # All frameworks must also match queues without the label (hand-configured ones): ".*", not ".+".
    assert (variables["framework"]["includeAll"], variables["framework"]["allValue"]) == (True, ".*")
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
    for name in ("job", "instance", "queue"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"] == DATASOURCE
        assert variables[name]["query"].startswith("label_values(")
        assert variables[name]["includeAll"] is True
        # "All" is the listed values, never ".+" (which matches every target Prometheus scrapes).
        assert "allValue" not in variables[name]
    # The listed jobs and instances are bounded by the rules' selector from thresholds.yaml.
    assert variables["job"]["query"] == f"label_values(opsloop_exporter_build_info{{{SELECTOR_FROM_THRESHOLDS}}}, job)"
    assert variables["instance"]["query"] == (
        f'label_values(opsloop_exporter_build_info{{{SELECTOR_FROM_THRESHOLDS},job=~"$job"}}, instance)'
    )


def test_every_panel_and_query_uses_the_datasource_variable(board: dict[str, Any]) -> None:
    for panel in board["panels"]:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert all(t["datasource"] == DATASOURCE for t in panel["targets"]), panel["title"]
        assert panel["targets"], panel["title"]


def test_panels_have_title_description_and_unit(board: dict[str, Any]) -> None:
    for panel in board["panels"]:
        assert panel["title"], panel["id"]
        assert panel["description"], panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]


def test_every_selector_matches_job_and_instance(board: dict[str, Any]) -> None:
    for title, expr in _targets(board):
        selectors = SELECTOR.findall(expr)
        assert selectors, (title, expr)
        for matchers in selectors:
            assert 'job=~"$job"' in matchers, (title, expr)
            assert 'instance=~"$instance"' in matchers, (title, expr)


def test_rates_use_rate_interval_and_counters_only_inside_rates(board: dict[str, Any]) -> None:
    for title, expr in _targets(board):
        for _func, rng in re.findall(r"\b(rate|irate|increase)\([^\[]*\[([^\]]*)\]", expr):
            assert rng == "$__rate_interval", (title, expr)
        assert "irate(" not in expr, (title, expr)
        for match in re.finditer(r"[\w:]+_total\b", expr):
            assert re.search(r"\b(rate|increase)\($", expr[: match.start()]), (title, expr)


def test_threshold_steps_start_at_null_and_rise(board: dict[str, Any]) -> None:
    for panel in board["panels"]:
        thresholds = panel["fieldConfig"]["defaults"]["thresholds"]
        assert thresholds["mode"] == "absolute"
        values = [step["value"] for step in thresholds["steps"]]
        assert values[0] is None, panel["title"]
        assert values[1:] == sorted(set(values[1:])), panel["title"]


def test_panels_fit_the_grid_without_overlap(board: dict[str, Any]) -> None:
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        area = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & area, panel["title"]
        cells |= area


def test_firing_alerts_annotation(board: dict[str, Any]) -> None:
    [annotation] = board["annotations"]["list"]
    assert annotation["datasource"] == DATASOURCE
    assert annotation["expr"] == f'ALERTS{{alertstate="firing",{SELECTOR_FROM_THRESHOLDS},job=~"$job"}}'
    assert annotation["enable"] is True


def test_links_point_at_the_other_dashboard(board: dict[str, Any]) -> None:
    uids = {_load(p)["uid"] for p in DASHBOARDS}
    targets = {link["url"].removeprefix("/d/") for link in board["links"]}
    assert targets == uids - {board["uid"]}


def test_rates_have_rate_units_not_ops(board: dict[str, Any]) -> None:
    units = {p["title"]: p["fieldConfig"]["defaults"]["unit"] for p in board["panels"]}
    assert "ops" not in units.values()
    if "Queue growth" in units:
        assert units["Queue growth"] == "suffix: items/s"


def test_job_failure_threshold_is_drawn_on_the_failure_ratio_panel() -> None:
    thresholds = yaml.safe_load((Path(__file__).resolve().parents[2] / "rules/thresholds.yaml").read_text())
    ratio = thresholds["business"]["job_failures"]["max_ratio"]
    overview = _load(next(p for p in DASHBOARDS if p.name == "opsloop-overview.json"))
    (panel,) = [p for p in overview["panels"] if any("job_failure" in t["expr"] for t in p["targets"])]
    defaults = panel["fieldConfig"]["defaults"]
    assert ratio in [step["value"] for step in defaults["thresholds"]["steps"]]
    assert defaults["custom"]["thresholdsStyle"]["mode"] in ("line", "dashed", "line+area", "dashed+area")
    assert defaults["unit"] == "percentunit"
