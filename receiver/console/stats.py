"""Recovery statistics per alertname and per plan over a time range, for ``/ui/stats`` and ``/api/stats``.

Counted over incidents whose alert was received in the range (runs started by hand are left out: they
are not alerts). An incident is *repaired automatically* when a plan run on it ended ``recovered`` and
*escalated* when one ended ``escalated``. Time to repair runs from the alert's ``startsAt`` to the
earlier of the plan's recovery and the alert's resolution; time to first action from ``startsAt`` to
the first action of any plan. p90 is the nearest-rank percentile.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opsloop.receiver.domain import ESCALATED, RECOVERED, parse_time
from opsloop.receiver.store import StatsFacts

DAY = 86400.0


@dataclass
class Figures:
    """The numbers of one row (one alertname, one plan, or everything)."""

    incidents: int = 0
    repaired: int = 0
    escalated: int = 0
    repair_seconds: list[float] = field(default_factory=list)
    first_action_seconds: list[float] = field(default_factory=list)
    actions: dict[str, int] = field(default_factory=dict)

    def count_actions(self, actions: dict[str, int]) -> None:
        for result, n in actions.items():
            self.actions[result] = self.actions.get(result, 0) + n

    def as_dict(self) -> dict[str, Any]:
        return {
            "incidents": self.incidents,
            "repaired": self.repaired,
            "repaired_percent": percent(self.repaired, self.incidents),
            "escalated": self.escalated,
            "escalated_percent": percent(self.escalated, self.incidents),
            "time_to_repair_mean_seconds": mean(self.repair_seconds),
            "time_to_repair_p90_seconds": p90(self.repair_seconds),
            "time_to_first_action_mean_seconds": mean(self.first_action_seconds),
            "actions": dict(sorted(self.actions.items())),
        }


@dataclass(frozen=True)
class Day:
    start: float
    incidents: int
    repaired: int
    escalated: int


@dataclass
class Stats:
    since: float
    until: float
    total: Figures
    by_alertname: dict[str, Figures]
    by_plan: dict[str, Figures]
    days: list[Day]

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": _iso(self.since), "until": _iso(self.until), "total": self.total.as_dict(),
            "alertnames": {name: f.as_dict() for name, f in sorted(self.by_alertname.items())},
            "plans": {name: f.as_dict() for name, f in sorted(self.by_plan.items())},
            "incidents_per_day": [{"day": _iso(d.start)[:10], "incidents": d.incidents, "repaired": d.repaired,
                                   "escalated": d.escalated} for d in self.days],
        }  # fmt: skip


def percent(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def p90(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)], 3)


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


def compute(facts: StatsFacts, since: float, until: float) -> Stats:
    total = Figures()
    by_alertname: dict[str, Figures] = defaultdict(Figures)
    by_plan: dict[str, Figures] = defaultdict(Figures)
    runs = defaultdict(list)
    for run in facts.runs:
        runs[run.incident_id].append(run)
    first_day = math.floor(since / DAY) * DAY
    days = [[0, 0, 0] for _ in range(max(1, math.ceil((until - first_day) / DAY)))]
    for incident in facts.incidents:
        started = _started(incident.starts_at, incident.received_at)
        ended = parse_time(incident.ends_at)
        rows: Iterable[Figures] = (total, by_alertname[incident.alertname])
        plan_runs = runs.get(incident.id, [])
        recovered_at = [r.finished_at for r in plan_runs if r.state == RECOVERED and r.finished_at is not None]
        repaired, escalated = bool(recovered_at), any(r.state == ESCALATED for r in plan_runs)
        repair_end = min([*recovered_at, *([ended.timestamp()] if ended else [])], default=None)
        first_action = min((r.first_action_at for r in plan_runs if r.first_action_at is not None), default=None)
        for figures in rows:
            _add(figures, repaired, escalated, started, repair_end if repaired else None, first_action)
        for run in plan_runs:
            plan_end = run.finished_at if run.state == RECOVERED else None
            _add(by_plan[run.plan], run.state == RECOVERED, run.state == ESCALATED, started, plan_end,
                 run.first_action_at)  # fmt: skip
            for figures in (total, by_alertname[incident.alertname], by_plan[run.plan]):
                figures.count_actions(run.actions)
        index = int((incident.received_at - first_day) // DAY)
        if 0 <= index < len(days):
            days[index][0] += 1
            days[index][1] += repaired
            days[index][2] += escalated and not repaired
    return Stats(since, until, total, dict(by_alertname), dict(by_plan),
                 [Day(first_day + i * DAY, *counts) for i, counts in enumerate(days)])  # fmt: skip


def _add(figures: Figures, repaired: bool, escalated: bool, started: float, repaired_at: float | None,
         first_action: float | None) -> None:  # fmt: skip
    figures.incidents += 1
    figures.repaired += repaired
    figures.escalated += escalated
    if repaired_at is not None:
        figures.repair_seconds.append(max(0.0, repaired_at - started))
    if first_action is not None:
        figures.first_action_seconds.append(max(0.0, first_action - started))


def _started(starts_at: str, received_at: float) -> float:
    try:
        parsed = parse_time(starts_at)
    except ValueError:
        parsed = None
    return parsed.timestamp() if parsed else received_at
