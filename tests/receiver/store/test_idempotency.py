"""The plan idempotency key on both backends: Alertmanager redelivering a plan alert creates no new work."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from opsloop.receiver.domain import DELIVERY, PLAN, Job, RoutedAlert
from opsloop.receiver.store import Store

from tests.receiver.store.test_ops import NOW, alert

PLANS = [("fix", {"dlq": "dlq:a"}), ("page", {})]


def work(jobs: Sequence[Job]) -> list[tuple[str, str, str]]:
    return sorted((j.kind, j.target, j.notify_kind or "") for j in jobs)


async def test_the_same_plan_alert_twice_runs_each_plan_once(store: Store) -> None:
    await store.ingest([alert(plans=PLANS)], "http://am", 0, NOW)
    await store.ingest([alert(plans=PLANS)], "http://am", 0, NOW + 30)  # Alertmanager's repeat or retry
    (view,) = await store.incidents()
    assert work(view.jobs) == [(DELIVERY, "slack/oncall", "firing"), (PLAN, "fix", ""), (PLAN, "page", "")]
    assert [j.values for j in view.jobs if j.target == "fix"] == [{"dlq": "dlq:a"}]


def later(routed: RoutedAlert) -> RoutedAlert:
    """The same alert firing again an hour later: a new instance, with its own startsAt."""
    return dataclasses.replace(routed, alert=dataclasses.replace(routed.alert, starts_at="2030-01-01T01:00:00Z"))


async def test_a_new_firing_episode_runs_the_plan_again(store: Store) -> None:
    await store.ingest([alert(plans=PLANS[:1])], "", 0, NOW)
    await store.ingest([alert(status="resolved", plans=PLANS[:1])], "", 0, NOW + 60)
    await store.ingest([later(alert(plans=PLANS[:1]))], "", 0, NOW + 120)
    await store.ingest([later(alert(plans=PLANS[:1]))], "", 0, NOW + 150)
    plan_jobs = [j for v in await store.incidents() for j in v.jobs if j.kind == PLAN]
    assert sorted(j.incident.starts_at for j in plan_jobs) == ["2030-01-01T00:00:00Z", "2030-01-01T01:00:00Z"]
