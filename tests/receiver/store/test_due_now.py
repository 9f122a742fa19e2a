"""The handler wakes the worker only for webhooks that leave work due at once: checked against what a
claim at that instant finds in the store, on both backends."""

from __future__ import annotations

import dataclasses

import pytest
from opsloop.receiver.domain import RoutedAlert
from opsloop.receiver.store import Store

from tests.receiver.store.test_ops import NOW, alert

SLACK = "slack/oncall"


def grouped(fp: str, window: float, **kw: object) -> RoutedAlert:
    return alert(fp, group_key='{}:{alertname="A"}', group_windows={SLACK: window}, **kw)


def critical(routed: RoutedAlert) -> RoutedAlert:
    labels = {**routed.alert.labels, "severity": "critical"}
    return dataclasses.replace(routed, alert=dataclasses.replace(routed.alert, labels=labels))


CASES = {
    "waits for its group": (grouped("fp-wait", 5.0), False),
    "a page never waits": (critical(grouped("fp-page", 5.0)), True),
    "no group key": (alert("fp-alone"), True),
    "a window of zero": (grouped("fp-zero", 0.0), True),
    "a plan runs at once": (grouped("fp-plan", 5.0, plans=(("p", {}),)), True),
    "no work at all": (alert("fp-none", notifiers=()), False),
}


@pytest.mark.parametrize("case", CASES)
async def test_work_due_now_is_what_a_claim_at_that_instant_finds(store: Store, case: str) -> None:
    routed, due_now = CASES[case]
    assert routed.work_due_now is due_now
    await store.ingest([routed], "", 0, NOW)
    assert bool(await store.claim("w", 10, 30, NOW)) is due_now


async def test_a_grouped_message_is_due_after_its_window(store: Store) -> None:
    await store.ingest([grouped("fp-later", 5.0)], "", 0, NOW)
    assert await store.claim("w", 10, 30, NOW + 4.9) == []
    assert [job.target for job in await store.claim("w", 10, 30, NOW + 5.0)] == [SLACK]


async def test_a_resolved_alert_always_wakes_the_worker(store: Store) -> None:
    """Whether it leaves work depends on the store (who heard it fire, plans waiting): the handler cannot
    tell, so it wakes the worker."""
    resolved = dataclasses.replace(grouped("fp-res", 5.0), alert=dataclasses.replace(alert().alert, status="resolved"))
    assert resolved.work_due_now
