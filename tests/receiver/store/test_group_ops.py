"""The group operations a worker uses around a group message, on both backends: a failed attempt, a
message recorded while the group stays taken, and the reads that render a message (a firing message
still to send, the message each alert went out in, its members, the plan runs of its alerts).

The rows written are read beside the store (``rows``), not through its own reads.
"""

from __future__ import annotations

from typing import Any

import pytest
from opsloop.receiver.domain import FAILED, PLAN, SENT
from opsloop.receiver.store import Op, SqliteStore, Store
from opsloop.receiver.store.grouping import MAX_TAKE

from tests.receiver.store.test_group_parts import states, taken_group
from tests.receiver.store.test_grouping import WINDOWS
from tests.receiver.store.test_ops import NOW, alert
from tests.receiver.store.test_ops_rows import rows


def attempts(store: Store) -> dict[int, tuple[str, float, str | None, int, str]]:
    """By job: state, due time, lease owner, attempts and result."""
    found = rows(store, "SELECT id, state, due_at, lease_owner, attempts, result FROM jobs")
    return {job_id: tuple(rest) for job_id, *rest in found}  # type: ignore[misc]


async def test_a_failed_group_attempt_counts_on_every_member_and_gives_the_group_back_until_its_retry(
    store: Store,
) -> None:
    head, ids = await taken_group(store, 3)
    before = attempts(store)
    await store.release_group(head, "b", ids, NOW + 99, NOW + 6, failed="not the owner")  # it never held it
    assert attempts(store) == before
    assert rows(store, "SELECT owner, until FROM group_leases") == [("a", NOW + 35)]
    await store.release_group(head, "a", ids, NOW + 60, NOW + 6, failed="HTTP 500")
    assert attempts(store) == {i: ("pending", NOW + 60, None, 1, "HTTP 500") for i in ids}
    assert rows(store, "SELECT COUNT(*) FROM group_leases") == [(0,)]


async def test_giving_a_group_back_without_a_failure_counts_no_attempt(store: Store) -> None:
    head, ids = await taken_group(store, 2)
    await store.release_group(head, "a", ids, NOW + 10, NOW + 6)
    assert attempts(store) == {i: ("pending", NOW + 10, None, 0, "") for i in ids}
    assert rows(store, "SELECT COUNT(*) FROM group_leases") == [(0,)]


async def test_a_message_recorded_mid_group_ends_its_members_and_keeps_the_group_taken(store: Store) -> None:
    store.part_rows = 2
    head, ids = await taken_group(store, 5)
    sent, failed, rest = ids[:3], ids[3:4], ids[4:]
    assert not await store.record_group(head, "b", sent, SENT, "sent", NOW + 6, "ts-1")  # not the owner
    assert {state for state, *_ in states(store).values()} == {"pending"}
    assert await store.record_group(head, "a", sent, SENT, "sent in message 1", NOW + 6, "ts-1")
    assert await store.record_group(head, "a", failed, FAILED, "permanent error", NOW + 7)
    assert states(store) == {
        **{i: (SENT, NOW + 5, None, head.id) for i in sent},
        **{i: (FAILED, NOW + 5, None, None) for i in failed},
        **{i: ("pending", NOW + 5, "a" if i == head.id else None, None) for i in rest},
    }
    assert rows(store, "SELECT id, ref FROM jobs WHERE ref IS NOT NULL ORDER BY id") == [
        (i, "ts-1") for i in sorted(sent)
    ]
    assert rows(store, "SELECT owner, until FROM group_leases") == [("a", NOW + 35)]  # still "a"'s to go on with


async def test_a_resolution_waits_while_a_firing_message_of_its_alert_is_still_to_send(store: Store) -> None:
    head, ids = await taken_group(store, 2)  # the firing message of fp000 and fp001 is being sent
    await store.ingest([alert("fp000", status="resolved", **WINDOWS)], "http://am", 0, NOW + 6)
    ((resolved,),) = rows(store, "SELECT id FROM jobs WHERE notify_kind = 'resolved'")
    assert await store.firing_pending("slack/oncall", [resolved])
    assert not await store.firing_pending("email/lead", [resolved])  # the firing message is Slack's
    assert await store.end_group(head, "a", ids, SENT, "sent", [], NOW + 7)
    assert not await store.firing_pending("slack/oncall", [resolved])


async def test_a_group_message_is_found_by_its_alerts_and_lists_its_members(store: Store) -> None:
    head, ids = await taken_group(store, 3)
    # The others went out in the head's message (its id names it); the head is due again as the next one.
    assert await store.end_group(head, "a", ids[1:], SENT, "sent", ids[:1], NOW + 6)
    incidents = dict(rows(store, "SELECT id, incident_id FROM jobs"))
    told = {incidents[i]: head.id for i in ids[1:]}
    assert await store.firing_batches("slack/oncall", list(incidents.values())) == told
    assert await store.firing_batches("email/lead", list(incidents.values())) == {}
    assert [j.id for j in await store.batch_jobs(head.id)] == sorted(ids[1:])
    assert await store.batch_jobs(ids[1]) == []  # no message went out as a member


async def test_the_plan_runs_of_a_group_messages_alerts_come_with_their_actions(store: Store) -> None:
    await store.ingest([alert(f"fp{n}", plans=[("fix", {})]) for n in range(3)], "http://am", 0, NOW)
    runs = sorted((j for j in await store.claim("p", 50, 30, NOW) if j.kind == PLAN), key=lambda j: j.id)
    assert len(runs) == 3
    started = await store.begin_action(runs[1], "p", 0, "command", False, NOW + 1, NOW + 60)
    assert started is not None
    assert await store.plan_runs_of([]) == ([], [])
    found, actions = await store.plan_runs_of([runs[2].incident.id, runs[1].incident.id])
    assert [j.id for j in found] == [runs[1].id, runs[2].id]  # by id, deliveries of the alerts left out
    assert [(a.job_id, a.type, a.state) for a in actions] == [(runs[1].id, "command", "started")]


async def test_a_group_at_its_send_slot_sends_whichever_member_heads_it_then(store: Store) -> None:
    key = "slack-webhook:abc"
    assert await store.take_slot(10**9, "x", key, 1.0, NOW + 9) is None  # a message went out: next slot NOW + 10
    head, ids = await taken_group(store, 3)
    assert await store.group_slot(head, "a", ids, key, 1.0, NOW + 5, urgent=False) == NOW + 10
    assert rows(store, "SELECT job_id, at FROM slot_holds") == [(head.id, NOW + 10)]
    (again,) = await store.claim("a", 8, 30, NOW + 10)
    group = await store.take_group(again, "a", NOW + 40, NOW + 10)
    assert group is not None
    other = next(j for j in group if j.id != head.id)  # the slot is the group's, held by its earlier head
    assert await store.group_slot(other, "a", [j.id for j in group], key, 1.0, NOW + 10, urgent=False) is None
    assert rows(store, "SELECT COUNT(*) FROM slot_holds") == [(0,)]
    assert rows(store, "SELECT owner, until FROM group_leases") == [("a", NOW + 40)]  # still taken, to send
    assert {state for state, *_ in states(store).values()} == {"pending"}


def operations(store: Store) -> list[Op[Any]]:
    """The operations the store runs from now on, each its own transaction, in order."""
    run = store._run
    ran: list[Op[Any]] = []

    async def counted(op: Op[Any]) -> Any:
        ran.append(op)
        return await run(op)

    store._run = counted  # type: ignore[method-assign]
    return ran


@pytest.mark.parametrize(("size", "done", "part_rows", "writes"), [
    (4, 2, None, 1), (4, 2, 4, 1), (4, 2, 3, 2),  # two changes of two members: the message, the rest
    (6, 4, 3, 2),  # the message in parts of three and one, then the rest (two): three and three
])  # fmt: skip
async def test_changes_of_a_group_that_fit_in_one_part_are_written_in_one_operation(
    store: Store, size: int, done: int, part_rows: int | None, writes: int
) -> None:
    store.part_rows = part_rows
    head, ids = await taken_group(store, size)
    ran = operations(store)
    assert await store.end_group(head, "a", ids[:done], SENT, "sent", ids[done:], NOW + 6)
    assert len(ran) == writes
    assert states(store) == {
        **{i: (SENT, NOW + 5, None, head.id) for i in ids[:done]},
        **{i: ("pending", NOW + 6, None, None) for i in ids[done:]},
    }
    assert rows(store, "SELECT COUNT(*) FROM group_leases") == [(0,)]


async def test_a_part_of_a_refused_group_counts_every_change_it_holds(store: Store) -> None:
    store.part_rows = MAX_TAKE + 2
    key = "slack-webhook:abc"
    assert await store.take_slot(10**9, "x", key, 1.0, NOW + 9) is None  # a message went out: next slot NOW + 10
    await store.ingest([alert(f"fp{n:04}", **WINDOWS) for n in range(MAX_TAKE + 3)], "http://am", 0, NOW)
    (head,) = await store.claim("a", 8, 30, NOW + 5)
    group = await store.take_group(head, "a", NOW + 35, NOW + 5)
    assert group is not None
    taken = [j.id for j in group]
    ran = operations(store)
    assert await store.group_slot(head, "a", taken, key, 1.0, NOW + 5, urgent=False) == NOW + 10
    # Held back: one member in the first tier, two in the second, then the MAX_TAKE taken given back. The
    # first two changes fit in one part with room to spare, the third not with them: two writes.
    writes = [op for op in ran if op.gi_code.co_name == "while_owned"]
    assert len(writes) == 2
    due = dict(rows(store, "SELECT id, due_at FROM jobs"))
    held = sorted(set(due) - set(taken))
    assert [due[i] for i in held] == [NOW + 10, NOW + 11, NOW + 11]
    assert {due[i] for i in taken} == {NOW + 10}


@pytest.mark.parametrize(("size", "writes"), [(200, 1), (201, 2)])
async def test_sqlite_writes_a_long_group_change_in_parts_of_200_members(
    sqlite_store: SqliteStore, size: int, writes: int
) -> None:
    """Webhooks commit in SQLite's one writer too: between two parts of a long group write, not after it."""
    head, ids = await taken_group(sqlite_store, size)
    ran = operations(sqlite_store)
    assert await sqlite_store.end_group(head, "a", ids, SENT, "sent", [], NOW + 6)
    assert len(ran) == writes
    assert {state for state, *_ in states(sqlite_store).values()} == {SENT}
