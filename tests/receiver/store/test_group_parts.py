"""A group's long writes in parts (``part_rows``), on both backends: the rows are those of one write, a lease
lost between parts stops the rest, and a worker that dies between parts loses no alert and sends none twice
beyond the message it was recording (whose resend says it may be a repeat). A group held back for its send
slot is not being sent: a resolution replaces its firing member, a plan's note folds into it.

The rows are read beside the store (``rows``), not through its own reads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from opsloop.receiver.domain import PLAN, SENT, SKIPPED, Job, NewDelivery, Outcome
from opsloop.receiver.store import Op, Store

from tests.receiver.store.test_grouping import WINDOWS, same_store
from tests.receiver.store.test_ops import NOW, alert
from tests.receiver.store.test_ops_rows import rows


async def taken_group(store: Store, size: int) -> tuple[Job, list[int]]:
    """A group of ``size`` members due at NOW + 5, claimed and taken by "a": its head and member ids."""
    await store.ingest([alert(f"fp{n:03}", **WINDOWS) for n in range(size)], "http://am", 0, NOW)
    (head,) = await store.claim("a", 8, 30, NOW + 5)
    group = await store.take_group(head, "a", NOW + 35, NOW + 5)
    assert group is not None
    assert len(group) == size
    return head, [j.id for j in group]


def states(store: Store) -> dict[int, tuple[str, float, str | None, int | None]]:
    """By job: state, due time, lease owner and the message (batch) it went out in."""
    found = rows(
        store,
        "SELECT id, state, due_at, lease_owner, batch FROM jobs WHERE gid IS NOT NULL",
    )
    return {job_id: (state, due_at, owner, batch) for job_id, state, due_at, owner, batch in found}


def after_parts(store: Store, parts: int, then: Callable[[], Awaitable[None]]) -> None:
    """Run ``then`` once the store has committed ``parts`` operations from now on (between two parts)."""
    run = store._run
    done = 0

    async def counted(op: Op[Any]) -> Any:
        nonlocal done
        value = await run(op)
        done += 1
        if done == parts:
            await then()
        return value

    store._run = counted  # type: ignore[method-assign]


class Died(Exception):
    """The worker's process ended here: nothing after this point ran."""


@pytest.mark.parametrize("part_rows", [None, 4])
async def test_a_message_ended_in_parts_leaves_the_rows_of_one_write(store: Store, part_rows: int | None) -> None:
    store.part_rows = part_rows
    head, ids = await taken_group(store, 10)
    done, rest = ids[:7], ids[7:]
    assert await store.end_group(head, "a", done, SENT, "sent in message 1", rest, NOW + 6, "ts-1")
    assert states(store) == {
        **{i: (SENT, NOW + 5, None, head.id) for i in done},
        **{i: ("pending", NOW + 6, None, None) for i in rest},
    }
    assert rows(store, "SELECT COUNT(*) FROM group_leases") == [(0,)]
    assert {ref for (ref,) in rows(store, "SELECT ref FROM jobs WHERE batch IS NOT NULL")} == {"ts-1"}
    (follow_up,) = await store.claim("b", 8, 30, NOW + 6)  # the group was given back: its rest is due now
    assert follow_up.id in rest


async def test_a_lease_lost_between_parts_writes_no_further_part(store: Store) -> None:
    store.part_rows = 3
    head, ids = await taken_group(store, 12)
    replica = same_store(store)
    await replica.open()
    taken: list[Job] = []

    async def take_over() -> None:  # "a" stalled past its lease: "b" takes the group over
        assert await replica.expire_leases(["a"], NOW + 40) == 1
        (claimed,) = await replica.claim("b", 8, 30, NOW + 40)
        taken.extend(await replica.take_group(claimed, "b", NOW + 70, NOW + 40) or [])

    try:
        after_parts(store, 2, take_over)
        assert not await store.end_group(head, "a", ids, SENT, "sent in message 1", [], NOW + 41)
    finally:
        await replica.close()
    # The two parts written before the takeover ended six members, the head last of all: "b" takes the
    # other six, "a" ends none of them afterwards, so each alert is recorded in one message.
    others = [i for i in ids if i != head.id]
    ended = {i for i, (state, *_) in states(store).items() if state == SENT}
    assert ended == set(others[:6])
    assert sorted(j.id for j in taken) == sorted([*others[6:], head.id])
    assert rows(store, "SELECT owner FROM group_leases") == [("b",)]


async def test_a_worker_dying_between_parts_loses_no_alert_and_its_takeover_says_it_may_repeat(store: Store) -> None:
    store.part_rows = 3
    head, ids = await taken_group(store, 12)

    async def die() -> None:
        raise Died

    after_parts(store, 2, die)
    with pytest.raises(Died):
        await store.end_group(head, "a", ids, SENT, "sent in message 1", [], NOW + 6)
    recorded = {i for i, (state, *_) in states(store).items() if state == SENT}
    replica = same_store(store)  # the restarted process
    await replica.open()
    try:
        assert await replica.expire_leases(["a"], NOW + 7) == 1  # it recognises its dead predecessor
        (again,) = await replica.claim("a2", 8, 30, NOW + 7)
        group = await replica.take_group(again, "a2", NOW + 37, NOW + 7)
    finally:
        await replica.close()
    assert group is not None
    # Every member is either recorded in the message sent, or in the takeover's; none in both.
    assert len(recorded) == 6
    assert recorded.isdisjoint(j.id for j in group)
    assert recorded | {j.id for j in group} == set(ids)
    # The head was written last, so it is still the dead worker's: the takeover counts the interruption,
    # and its message says it may be a repeat (its alerts may have been in the message being recorded).
    assert again.id == head.id
    assert again.interrupted == 1


async def refused_group(store: Store, size: int) -> tuple[Job, list[int], str]:
    """A group of ``size`` taken by "a" whose Slack webhook's next send slot is NOW + 10."""
    key = "slack-webhook:abc"
    assert await store.take_slot(10**9, "x", key, 1.0, NOW + 9) is None  # a message went out: next slot NOW + 10
    head, ids = await taken_group(store, size)
    return head, ids, key


async def test_a_resolution_while_a_refused_group_is_held_back_replaces_its_firing_member(store: Store) -> None:
    store.part_rows = 2
    head, ids, key = await refused_group(store, 6)
    resolved = ids[3]

    async def resolve() -> None:  # between the refused slot and the members' hold-back: nothing is being sent
        fingerprint = rows(store, f"SELECT i.fingerprint FROM jobs j JOIN incidents i ON i.id = j.incident_id "
                                  f"WHERE j.id = {resolved}")[0][0]  # fmt: skip
        await store.ingest([alert(fingerprint, status="resolved", **WINDOWS)], "http://am", 0, NOW + 5.5)

    after_parts(store, 1, resolve)
    assert await store.group_slot(head, "a", ids, key, 1.0, NOW + 5, urgent=False) == NOW + 10
    assert {i: state[:2] for i, state in states(store).items() if i in ids} == {
        **{i: ("pending", NOW + 10) for i in ids if i != resolved},
        resolved: ("replaced", NOW + 5),
    }
    assert rows(store, "SELECT COUNT(*) FROM group_leases") == [(0,)]


async def test_a_worker_dying_while_it_holds_a_group_back_leaves_it_held_until_its_slot(store: Store) -> None:
    store.part_rows = 2
    head, ids, key = await refused_group(store, 6)

    async def die() -> None:
        raise Died

    after_parts(store, 1, die)
    with pytest.raises(Died):
        await store.group_slot(head, "a", ids, key, 1.0, NOW + 5, urgent=False)
    replica = same_store(store)  # the restarted process
    await replica.open()
    try:
        await replica.expire_leases(["a"], NOW + 6)
        # The members could not go out before the slot anyway: none is claimed before it, one at it.
        assert await replica.claim("a2", 8, 30, NOW + 9.5) == []
        (again,) = await replica.claim("a2", 8, 30, NOW + 10.5)
    finally:
        await replica.close()
    assert again.id in ids


async def test_a_plan_note_while_its_alerts_group_is_held_back_folds_into_the_waiting_message(store: Store) -> None:
    store.part_rows = 2
    key = "slack-webhook:abc"
    assert await store.take_slot(10**9, "x", key, 1.0, NOW + 9) is None  # a message went out: next slot NOW + 10
    await store.ingest([alert(f"fp{n}", plans=[("fix", {})], **WINDOWS) for n in range(4)], "http://am", 0, NOW)
    plans = [j for j in await store.claim("p", 50, 30, NOW) if j.kind == PLAN]
    (head,) = await store.claim("a", 8, 30, NOW + 5)
    group = await store.take_group(head, "a", NOW + 35, NOW + 5)
    assert group is not None
    plan = next(p for p in plans if p.incident.id != head.incident.id)
    note = (NewDelivery("k-note", "slack/oncall", "firing", "plan fix did not run"),)

    async def plan_ends() -> None:  # its alert's firing message waits for the group's slot, unsent
        assert await store.finish(plan, "p", NOW + 5.5, lambda status: Outcome(SKIPPED, "x", note)) is not None

    after_parts(store, 1, plan_ends)
    assert await store.group_slot(head, "a", [j.id for j in group], key, 1.0, NOW + 5, urgent=False) == NOW + 10
    # Folded into the waiting firing message (which says what automation did when it goes out), not a
    # message of its own as while the group's message may be on its way.
    assert rows(store, "SELECT notify_kind, COUNT(*) FROM jobs WHERE kind = 'delivery' GROUP BY notify_kind") == [
        ("firing", 4)
    ]
