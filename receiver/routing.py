"""Which notifiers and recovery plans an alert goes to, decided per alert from its labels alone.

Routes: the first matching route wins unless it says ``continue: true``. Plans: every plan whose
``match`` and ``matchers`` fit takes the alert, provided each label in its ``labels:`` section fully matches the plan's
pattern; only those labels (and the patterns' named groups) become values for the plan's actions, so
an unvalidated label never reaches an action. ``explain`` gives the same decision with reasons.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from opsloop.receiver.config import Matching, Plan, ReceiverConfig, Route
from opsloop.receiver.matchers import failures


@dataclass(frozen=True)
class PlanMatch:
    plan: Plan
    values: dict[str, str]


@dataclass(frozen=True)
class Decision:
    notifiers: tuple[str, ...]
    plans: tuple[PlanMatch, ...]
    rejected: tuple[str, ...]
    """Why plans that matched did not take the alert (a label failed its pattern)."""
    windows: Mapping[str, float]
    """Per notifier, the ``group_window`` of the first matching route that names it."""

    @property
    def note(self) -> str:
        return "; ".join(self.rejected)


@dataclass
class Explanation:
    routes: list[dict[str, object]] = field(default_factory=list)
    plans: list[dict[str, object]] = field(default_factory=list)


def mismatches(rule: Matching, labels: Mapping[str, str]) -> list[str]:
    """Why ``labels`` do not fit a route's or plan's ``match`` and ``matchers`` (empty when they do)."""
    return [
        f"{name}: wanted {wanted!r}, got {labels[name]!r}" if name in labels else f"{name}: missing"
        for name, wanted in rule.match.items()
        if labels.get(name) != wanted
    ] + failures(rule.all_matchers(), labels)


def plan_values(plan: Plan, labels: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The validated labels and named groups of a plan, and why any label failed its pattern."""
    values: dict[str, str] = {}
    problems: list[str] = []
    for name, pattern in plan.labels.items():
        value = labels.get(name)
        found = re.fullmatch(pattern, value) if value is not None else None
        if found is None:
            problems.append(f"label {name} " + ("is missing" if value is None else "does not match its pattern"))
            continue
        values[name] = value
        values.update(found.groupdict(default=""))  # an optional group that did not take part reads ""
    return values, problems


def route_windows(routes: list[Route], labels: Mapping[str, str]) -> dict[str, float]:
    """The notifiers of the matching routes, in order, each with its first route's ``group_window``."""
    chosen: dict[str, float] = {}
    for route in routes:
        if not mismatches(route, labels):
            for notifier in route.notify:
                chosen.setdefault(notifier, route.group_window)
            if not route.continue_:
                break
    return chosen


def route_notifiers(routes: list[Route], labels: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(route_windows(routes, labels))


def decide(config: ReceiverConfig, labels: Mapping[str, str]) -> Decision:
    plans: list[PlanMatch] = []
    rejected: list[str] = []
    for plan in config.recovery:
        if mismatches(plan, labels):
            continue
        values, problems = plan_values(plan, labels)
        if problems:
            rejected.append(f"plan {plan.name} did not run: {', '.join(problems)}")
        else:
            plans.append(PlanMatch(plan, values))
    windows = route_windows(config.routes, labels)
    return Decision(tuple(windows), tuple(plans), tuple(rejected), windows)


def explain(config: ReceiverConfig, labels: Mapping[str, str]) -> Explanation:
    """Every route and plan with whether it matches ``labels`` and why; nothing is acted on."""
    out = Explanation()
    stopped = False
    for index, route in enumerate(config.routes):
        why = mismatches(route, labels)
        out.routes.append({
            "index": index, "match": route.match, "matchers": [str(m) for m in route.all_matchers()],
            "notify": route.notify, "matched": not why and not stopped,
            "why": "an earlier route matched without continue" if stopped and not why else (why or "all matchers fit"),
        })  # fmt: skip
        stopped = stopped or (not why and not route.continue_)
    for plan in config.recovery:
        why = mismatches(plan, labels)
        values, problems = plan_values(plan, labels) if not why else ({}, [])
        out.plans.append({
            "name": plan.name, "matchers": [str(m) for m in plan.all_matchers()], "matched": not why,
            "takes_alert": not why and not problems,
            "why": why or problems or "all matchers and label patterns fit", "values": values,
        })  # fmt: skip
    return out
