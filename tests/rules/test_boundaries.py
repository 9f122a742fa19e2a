"""Every alert and tier rendered from rules/thresholds.yaml is pinned at its boundary by a promtool test.

promtool runs the tests (test_promtool.py); this file checks that they exist, so an alert added to the
thresholds without boundary tests fails here. The convention, also written at the top of
rules/tests/boundaries.test.yml:

- A series is *tagged* when one of its label values (queue, dlq, redis, pattern, source, query, instance:
  whichever the alert keeps) is ``<severity>-above[-variant]`` or ``<severity>-below[-variant]``.
  ``above`` sits just on the firing side of that tier's threshold, ``below`` just on the quiet side,
  whichever way the comparison goes (for ``< 0.5``, 0.49 is above and 0.5 below).
- An alert that cannot carry a tag (``absent()`` keeps only its matchers' labels) names one in the test's
  name instead, ``[boundary critical-above]``, and the tag then covers every alert of that test.
- Above: the tagged alert appears in some case at ``t >= for`` and a case of the same test at
  ``t - evaluation_interval`` does not list it. So promtool proves it fires exactly then and not a step
  earlier; ``for`` is pinned because the series is above from its first usable sample.
- Below: the tagged series is in the test's input, and a case at ``t >= for`` lists no alert of that tier
  for it.
- Multi-clause alerts (``and``, ``or``, ``unless``) need one below variant per clause (operators + 1),
  each series failing exactly one clause, so dropping any clause makes promtool fail.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from opsloop.render.output import render_all
from opsloop.render.thresholds import default_path, load_thresholds

from tests.rules.conftest import RULES, UNIT_TEST_FILES

TAG = re.compile(r"(critical|warning|info)-(above|below)(?:-[\w-]+)?")
NAMED_TAG = re.compile(r"\[boundary ((?:critical|warning|info)-(?:above|below)(?:-[\w-]+)?)\]")
SET_OPERATOR = re.compile(r"\b(?:and|or|unless)\b")
DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")
SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(text: str | int | None) -> float:
    if text is None:
        return 0.0
    parts = DURATION.findall(str(text))
    assert "".join(n + u for n, u in parts) == str(text), f"not a duration: {text}"
    return sum(int(n) * SECONDS[u] for n, u in parts)


@dataclass(frozen=True)
class Tier:
    alert: str
    severity: str
    for_seconds: float
    clauses: int


@dataclass(frozen=True)
class Case:
    """One alert_rule_test case: the tags of the listed alerts, by severity."""

    test: str
    interval: float
    alert: str
    at: float
    fired: frozenset[tuple[str, str]]  # (severity, tag)
    series_tags: frozenset[str]


def tiers() -> list[Tier]:
    """Alert and severity pairs rendered from rules/thresholds.yaml (not the committed file)."""
    assert (RULES / "thresholds.yaml").read_text() == default_path().read_text(), "the renderer's defaults differ"
    rendered = yaml.safe_load(render_all(load_thresholds())["rules/opsloop-alerts.yml"])
    return [
        Tier(
            rule["alert"],
            rule["labels"]["severity"],
            seconds(rule.get("for")),
            len(SET_OPERATOR.findall(rule["expr"])) + 1,
        )
        for group in rendered["groups"]
        for rule in group["rules"]
    ]


def tags_of(labels: dict[str, Any], named: str | None) -> set[str]:
    found = {str(v) for k, v in labels.items() if k != "severity" and TAG.fullmatch(str(v))}
    return found or ({named} if named else set())


def cases() -> Iterator[Case]:
    for path in UNIT_TEST_FILES:
        doc = yaml.safe_load(path.read_text())
        interval = seconds(doc.get("evaluation_interval", "1m"))
        for test in doc["tests"]:
            name = test.get("name", "")
            named = NAMED_TAG.search(name)
            series = {m.group(0) for s in test.get("input_series", []) for m in TAG.finditer(s["series"])}
            series |= {named.group(1)} if named else set()
            for case in test.get("alert_rule_test", []):
                fired = {
                    (alert["exp_labels"]["severity"], tag)
                    for alert in case.get("exp_alerts") or []
                    for tag in tags_of(alert["exp_labels"], named.group(1) if named else None)
                }
                yield Case(
                    name, interval, case["alertname"], seconds(case["eval_time"]), frozenset(fired), frozenset(series)
                )


TIERS = tiers()
CASES = list(cases())


def above_pinned(tier: Tier, tag: str) -> bool:
    mine = [c for c in CASES if c.alert == tier.alert]
    firing = [c for c in mine if (tier.severity, tag) in c.fired]
    if not firing:
        return False
    first = min(firing, key=lambda c: c.at)
    before = [c for c in mine if c.test == first.test and c.at == first.at - first.interval]
    return first.at >= tier.for_seconds and any((tier.severity, tag) not in c.fired for c in before)


def below_pinned(tier: Tier, tag: str) -> bool:
    return any(
        c.alert == tier.alert
        and tag in c.series_tags
        and c.at >= tier.for_seconds
        and (tier.severity, tag) not in c.fired
        for c in CASES
    )


@pytest.mark.parametrize("tier", TIERS, ids=[f"{t.alert}-{t.severity}" for t in TIERS])
def test_every_alert_tier_has_a_below_and_above_pair(tier: Tier) -> None:
    tags = {tag for c in CASES if c.alert == tier.alert for tag in c.series_tags if tag.startswith(f"{tier.severity}-")}
    above = sorted(t for t in tags if t.startswith(f"{tier.severity}-above") and above_pinned(tier, t))
    below = sorted(t for t in tags if t.startswith(f"{tier.severity}-below") and below_pinned(tier, t))
    assert above, f"no {tier.severity}-above series of {tier.alert} fires exactly after its for ({tier.for_seconds:g}s)"
    assert len(below) >= tier.clauses, (
        f"{tier.alert} {tier.severity}: {tier.clauses} clause(s), quiet {tier.severity}-below cases only for {below}"
    )


def test_the_checker_sees_a_missing_pair() -> None:
    """The check itself can fail: a tier nobody tagged is reported."""
    ghost = Tier("NoSuchAlert", "critical", 60, 1)
    assert not any(above_pinned(ghost, f"critical-above{v}") for v in ("", "-x"))
    assert not below_pinned(ghost, "critical-below")
    backlog = next(t for t in TIERS if (t.alert, t.severity) == ("QueueBacklogHigh", "warning"))
    assert above_pinned(backlog, "warning-above")
    assert not above_pinned(Tier("QueueBacklogHigh", "warning", 6 * 60, 1), "warning-above")  # fires before its for
