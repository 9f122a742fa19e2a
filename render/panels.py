"""Grafana building blocks: panels, variables and annotations that follow the dashboard-linter rules.

Every query goes through the ``$datasource`` variable and carries ``job``/``instance`` matchers, so one
file works for UI import and for file provisioning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opsloop.metric_contract import BUILD_INFO, QUEUE_LENGTH

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_WIDTH = 24


def query(metric: str, *matchers: str) -> str:
    """``metric`` filtered by the dashboard's job and instance variables (and ``matchers``)."""
    return metric + "{" + ",".join(('job=~"$job"', 'instance=~"$instance"', *matchers)) + "}"


def steps(base: str, *levels: tuple[float, str]) -> dict[str, Any]:
    """Absolute threshold steps: ``base`` colour from null, then each (value, colour) upwards."""
    return {
        "mode": "absolute",
        "steps": [{"color": base, "value": None}] + [{"color": c, "value": v} for v, c in levels],
    }


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    """One panel; ``width``/``height`` in grid units, placed left to right by ``layout``."""

    kind: str
    title: str
    description: str
    unit: str
    targets: list[Target]
    thresholds: dict[str, Any] = field(default_factory=lambda: steps("green"))
    width: int = 8
    height: int = 8

    def to_json(self, panel_id: int, x: int, y: int) -> dict[str, Any]:
        defaults: dict[str, Any] = {
            "unit": self.unit,
            "thresholds": self.thresholds,
            "color": {"mode": "thresholds" if self.kind == "stat" else "palette-classic"},
        }
        if self.kind == "timeseries":
            defaults["custom"] = {"thresholdsStyle": {"mode": "dashed"}, "fillOpacity": 10}
        return {
            "id": panel_id,
            "type": self.kind,
            "title": self.title,
            "description": self.description,
            "datasource": DATASOURCE,
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": _OPTIONS[self.kind],
            "targets": [
                {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": t.expr, "legendFormat": t.legend}
                for i, t in enumerate(self.targets)
            ],
        }


_OPTIONS: dict[str, dict[str, Any]] = {
    "stat": {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "background",
        "graphMode": "none",
        "textMode": "value_and_name",
    },
    "timeseries": {
        "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
        "tooltip": {"mode": "multi", "sort": "desc"},
    },
}


def layout(panels: list[Panel]) -> list[dict[str, Any]]:
    """Place panels in rows of GRID_WIDTH, numbering them from 1 (ids are unique per dashboard)."""
    out, x, y, row_height = [], 0, 0, 0
    for panel_id, panel in enumerate(panels, start=1):
        if x + panel.width > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        out.append(panel.to_json(panel_id, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return out


def _query_variable(name: str, definition: str, all_value: str | None = None) -> dict[str, Any]:
    """Without ``all_value``, "All" is the alternation of the listed values, which the selector bounds,
    rather than ".+", which would match every target Prometheus scrapes."""
    variable = {
        "name": name,
        "label": name,
        "type": "query",
        "datasource": DATASOURCE,
        "query": definition,
        "definition": definition,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "sort": 1,
        "current": {},
        "options": [],
        "hide": 0,
        "regex": "",
    }
    if all_value is not None:
        variable["allValue"] = all_value
    return variable


HAS_FRAMEWORK = 'framework!=""'


def variables(selector: str) -> list[dict[str, Any]]:
    """``datasource``, then ``job``, ``instance``, ``queue`` and ``framework``, each narrowed by the ones
    before (``framework`` by job and instance).

    ``selector`` (thresholds.yaml's) bounds the jobs and instances offered, as it bounds the rules.
    """
    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "options": [],
            "hide": 0,
            "refresh": 1,
            "regex": "",
        },
        _query_variable("job", f"label_values({BUILD_INFO.series}{{{selector}}}, job)"),
        _query_variable("instance", f'label_values({BUILD_INFO.series}{{{selector},job=~"$job"}}, instance)'),
        _query_variable("queue", f"label_values({query(QUEUE_LENGTH.series)}, queue)"),
        # ".*" for All: hand-configured queues have no framework label and must match too.
        _query_variable("framework", f"label_values({query(QUEUE_LENGTH.series, HAS_FRAMEWORK)}, framework)", ".*"),
    ]


def alerts_annotation(selector: str) -> dict[str, Any]:
    """Firing opsloop alerts drawn on every time series panel: only those of the selected opsloop jobs."""
    return {
        "name": "Firing alerts",
        "datasource": DATASOURCE,
        "enable": True,
        "iconColor": "red",
        "expr": f'ALERTS{{alertstate="firing",{selector},job=~"$job"}}',
        "step": "60s",
        "titleFormat": "{{alertname}}",
        "textFormat": "{{severity}} {{instance}}",
        "tagKeys": "severity",
        "useValueForTime": False,
    }


def dashboard(
    uid: str, title: str, description: str, panels: list[Panel], links: list[dict[str, Any]], selector: str
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["opsloop"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "timezone": "browser",
        "links": links,
        "annotations": {"list": [alerts_annotation(selector)]},
        "templating": {"list": variables(selector)},
        "panels": layout(panels),
    }
