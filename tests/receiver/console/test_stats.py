"""Statistics arithmetic and the chart, from facts written by hand (the numbers are worked out below)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from opsloop.receiver.console.charts import incidents_per_day
from opsloop.receiver.console.stats import compute, p90
from opsloop.receiver.store import StatsFacts, StatsIncident, StatsRun

DAY = 86400.0
T0 = 1_800_000_000.0 - 1_800_000_000.0 % DAY  # a UTC midnight


def starts(offset: float) -> str:
    return datetime.fromtimestamp(T0 + offset, UTC).isoformat()


def test_nearest_rank_p90() -> None:
    assert p90([]) is None
    assert p90([5.0]) == 5.0
    assert p90([float(n) for n in range(1, 11)]) == 9.0  # ceil(0.9 * 10) = 9th value
    assert p90([float(n) for n in range(1, 12)]) == 10.0  # ceil(0.9 * 11) = 10th value


def test_rates_times_and_days() -> None:
    incidents = [
        StatsIncident(1, "A", starts(0), T0 + 10, None),  # repaired 60 s after it began
        StatsIncident(2, "A", starts(100), T0 + 110, starts(400)),  # resolved at 400 before the plan's end
        StatsIncident(3, "B", starts(DAY), T0 + DAY + 5, None),  # escalated
        StatsIncident(4, "B", starts(DAY), T0 + DAY + 6, None),  # no plan
    ]
    runs = [
        StatsRun(1, "fix", "recovered", T0 + 60, T0 + 20, {"ok": 1}),
        StatsRun(2, "fix", "recovered", T0 + 900, T0 + 130, {"ok": 1, "failed": 1}),
        StatsRun(3, "fix", "escalated", T0 + DAY + 50, T0 + DAY + 10, {"failed": 2}),
    ]
    stats = compute(StatsFacts(incidents, runs), T0, T0 + 2 * DAY)
    total = stats.total.as_dict()
    assert (total["incidents"], total["repaired"], total["escalated"]) == (4, 2, 1)
    assert (total["repaired_percent"], total["escalated_percent"]) == (50.0, 25.0)
    assert total["time_to_repair_mean_seconds"] == 180.0  # (60 + 300) / 2
    assert total["time_to_repair_p90_seconds"] == 300.0
    assert total["time_to_first_action_mean_seconds"] == 20.0  # (20 + 30 + 10) / 3
    assert total["actions"] == {"failed": 3, "ok": 2}
    assert stats.by_alertname["B"].as_dict()["escalated_percent"] == 50.0
    plan = stats.by_plan["fix"].as_dict()
    assert (plan["incidents"], plan["repaired_percent"]) == (3, 66.7)
    assert plan["time_to_repair_mean_seconds"] == 430.0  # the plan's own end: (60 + 800) / 2
    assert [(d.incidents, d.repaired, d.escalated) for d in stats.days] == [(2, 2, 0), (2, 0, 1)]


def test_chart_is_valid_svg_with_words_and_numbers() -> None:
    stats = compute(StatsFacts([StatsIncident(1, "A", "", T0 + 5, None)], []), T0, T0 + 3 * DAY)
    svg = ET.fromstring(str(incidents_per_day(stats.days)))
    ns = {"svg": "http://www.w3.org/2000/svg"}
    texts = [t.text for t in svg.iterfind(".//svg:text", ns)]
    assert "1" in texts  # the bar's count as text
    assert {"repaired automatically (solid)", "escalated (hatched)", "other (outline)"} <= set(texts)
    assert svg.findtext("svg:desc", namespaces=ns) == "3 days, 1 incidents; 0 repaired automatically, 0 escalated."
    first_bar = next(svg.iterfind("svg:g", ns))
    assert first_bar.findtext("svg:title", namespaces=ns).endswith(
        "1 incidents, 0 repaired automatically, 0 escalated, 1 other"
    )
