"""Grouped deliveries on both backends, checked against the rows they leave: the group lease, each member's
message (batch) and reference, a group held back for its slot, the groups of messages queued later.

The rows are read beside the store (``rows``), not through its own reads.
"""

from __future__ import annotations

from opsloop.receiver.domain import FAILED, PLAN, SENT, SKIPPED, NewDelivery, Outcome, RoutedAlert
from opsloop.receiver.store import Store

from tests.receiver.store.test_group_parts import after_parts, refused_group, taken_group
from tests.receiver.store.test_grouping import WINDOWS
from tests.receiver.store.test_ops import NOW, alert, claim_plan
from tests.receiver.store.test_ops_rows import rows

KEY = '{}:{alertname="A"}'
GID = f"slack/oncall|firing|{KEY}"
LEASES = "SELECT gid, owner, until FROM group_leases"
MEMBERS = "SELECT id, gid, batch, ref FROM jobs WHERE gid IS NOT NULL ORDER BY id"


async def test_a_group_message_records_each_members_batch_and_reference_and_the_lease_ends_with_it(
    store: Store,
) -> None:
    await store.ingest([alert(f"fp{n}", **WINDOWS) for n in range(3)], "http://am", 0, NOW)
    (head,) = await store.claim("a", 8, 30, NOW + 5)
    assert rows(store, LEASES) == [(GID, "a", NOW + 35)]
    group = await store.take_group(head, "a", NOW + 40, NOW + 5)
    assert group is not None
    ids = [j.id for j in group]
    assert ids == sorted(ids)
    assert ids[0] == head.id
    assert rows(store, LEASES) == [(GID, "a", NOW + 40)]
    assert rows(store, MEMBERS) == [(i, GID, None, None) for i in ids]
    # One member out in a first message, the group kept; then the other two failed, the group given back.
    assert await store.record_group(head, "a", [ids[1]], SENT, "sent in message 1", NOW + 6, "ts-1")
    assert rows(store, LEASES) == [(GID, "a", NOW + 40)]
    assert await store.end_group(head, "a", [ids[2], ids[0]], FAILED, "gone", [], NOW + 7, "ts-2")
    assert rows(store, LEASES) == []
    assert rows(store, MEMBERS) == [
        (ids[0], GID, None, None), (ids[1], GID, head.id, "ts-1"), (ids[2], GID, None, None),
    ]  # fmt: skip
    found = "SELECT id, state, result, finished_at, attempts, lease_owner, lease_until, updated_at FROM jobs"
    assert rows(store, found + " ORDER BY id") == [
        (ids[0], FAILED, "gone", NOW + 7, 1, None, None, NOW + 7),
        (ids[1], SENT, "sent in message 1", NOW + 6, 1, None, None, NOW + 6),
        (ids[2], FAILED, "gone", NOW + 7, 1, None, None, NOW + 7),
    ]  # fmt: skip
    incidents = [j.incident.id for j in group]
    assert await store.firing_batches("slack/oncall", incidents) == {incidents[1]: head.id}
    assert await store.firing_batches("email/lead", incidents) == {}
    assert [j.id for j in await store.batch_jobs(head.id)] == [ids[1]]
    assert await store.batch_jobs(ids[1]) == []


async def test_a_group_given_back_after_a_failed_attempt_counts_it_on_every_member(store: Store) -> None:
    head, ids = await taken_group(store, 2)  # taken by "a"
    found = "SELECT id, due_at, lease_owner, lease_until, attempts, result, updated_at FROM jobs ORDER BY id"
    before = rows(store, found)
    await store.release_group(head, "b", ids, NOW + 20, NOW + 6, "boom")  # not "b"'s group: nothing changes
    assert rows(store, found) == before
    assert rows(store, LEASES) == [(GID, "a", NOW + 35)]
    await store.release_group(head, "a", ids, NOW + 20, NOW + 6, "boom")
    assert rows(store, found) == [(i, NOW + 20, None, None, 1, "boom", NOW + 6) for i in sorted(ids)]
    assert rows(store, LEASES) == []
    (again,) = await store.claim("a", 8, 30, NOW + 20)
    assert await store.take_group(again, "a", NOW + 50, NOW + 20) is not None
    await store.release_group(again, "a", ids, NOW + 25, NOW + 21)  # no error: no attempt counted
    assert rows(store, found) == [(i, NOW + 25, None, None, 1, "boom", NOW + 21) for i in sorted(ids)]


async def test_a_message_takes_a_thousand_members_and_the_waiting_past_a_thousand_wait_an_interval_more(
    store: Store,
) -> None:
    key = "slack-webhook:abc"
    assert await store.take_slot(10**9, "x", key, 2.0, NOW + 9) is None  # a message went out: next slot NOW + 11
    await store.ingest([alert(f"fp{n:04}", **WINDOWS) for n in range(1002)], "http://am", 0, NOW)
    (head,) = await store.claim("a", 8, 30, NOW + 5)
    group = await store.take_group(head, "a", NOW + 35, NOW + 5)
    assert group is not None
    assert [j.incident.fingerprint for j in group] == [f"fp{n:04}" for n in range(1000)]  # lowest ids first
    assert await store.group_slot(head, "a", [j.id for j in group], key, 2.0, NOW + 5, urgent=False) == NOW + 11
    due = rows(store, "SELECT i.fingerprint, j.due_at FROM jobs j JOIN incidents i ON i.id = j.incident_id")
    # Of the members waiting (all but the head, which holds the slot), those past the first thousand cannot go
    # out before the message after, one interval (2 s) later.
    assert dict(due) == {**{f"fp{n:04}": NOW + 11 for n in range(1001)}, "fp1001": NOW + 13}


async def test_a_refused_group_is_held_under_a_lease_marked_held_and_its_holder_keeps_the_slot(store: Store) -> None:
    head, ids, key = await refused_group(store, 3)  # taken by "a" until NOW + 35; the next slot is NOW + 10
    held: list[object] = []

    async def look() -> None:  # once the slot is refused, before the members are held back
        held.append(rows(store, LEASES))

    after_parts(store, 1, look)
    assert await store.group_slot(head, "a", ids, key, 1.0, NOW + 5, urgent=False) == NOW + 10
    assert held == [[(GID, "hold:a", NOW + 10)]]  # held back no later than its slot
    assert rows(store, LEASES) == []
    assert rows(store, "SELECT job_id, key, at FROM slot_holds") == [(head.id, key, NOW + 10)]
    (again,) = await store.claim("b", 8, 30, NOW + 10)
    group = await store.take_group(again, "b", NOW + 40, NOW + 10)
    assert group is not None
    other = next(j for j in group if j.id != head.id)
    # Whichever member asks, the slot is the one its group already holds, and it is due now.
    assert await store.group_slot(other, "b", [j.id for j in group], key, 1.0, NOW + 10, urgent=False) is None
    assert rows(store, "SELECT job_id FROM slot_holds") == []


async def test_a_group_held_back_past_a_slot_later_than_its_lease_keeps_its_lease_end(store: Store) -> None:
    key = "slack-webhook:abc"
    assert await store.take_slot(10**9, "x", key, 60.0, NOW + 9) is None  # the next slot is NOW + 69
    head, ids = await taken_group(store, 2)  # leased until NOW + 35
    held: list[object] = []

    async def look() -> None:
        held.append(rows(store, LEASES))

    after_parts(store, 1, look)
    assert await store.group_slot(head, "a", ids, key, 60.0, NOW + 5, urgent=False) == NOW + 69
    assert held == [[(GID, "hold:a", NOW + 35)]]


async def test_a_firing_message_is_pending_while_a_member_alerts_firing_message_is_unsent(store: Store) -> None:
    head, ids = await taken_group(store, 2)
    assert await store.firing_pending("slack/oncall", ids)
    assert await store.firing_pending("slack/oncall", ids[1:])
    assert not await store.firing_pending("email/lead", ids)
    assert await store.end_group(head, "a", ids[1:], SENT, "sent", [], NOW + 6)
    assert await store.firing_pending("slack/oncall", ids)
    assert not await store.firing_pending("slack/oncall", ids[1:])


async def test_an_alert_that_changes_group_takes_its_later_messages_to_the_new_one(store: Store) -> None:
    await store.ingest([alert("fp1", plans=[("fix", {})], notify_firing=False, **WINDOWS)], "", 0, NOW)
    moved = {"group_key": '{}:{team="b"}', "group_windows": {"slack/oncall": 20.0, "email/lead": 40.0}}
    await store.ingest([alert("fp1", plans=[("fix", {})], notify_firing=False, **moved)], "", 0, NOW + 1)
    assert rows(store, "SELECT notifier, group_key, wait FROM incident_groups ORDER BY notifier") == [
        ("email/lead", '{}:{team="b"}', 40.0), ("slack/oncall", '{}:{team="b"}', 20.0),
    ]  # fmt: skip
    job = await claim_plan(store, NOW + 2)
    told = (NewDelivery("k1", "slack/oncall", "firing", "plan fix did not run"),)
    assert await store.finish(job, "w", NOW + 3, lambda status: Outcome(SKIPPED, "x", told)) is not None
    assert rows(store, "SELECT due_at, gid FROM jobs WHERE kind = 'delivery'") == [
        (NOW + 23, 'slack/oncall|firing|{}:{team="b"}'),
    ]  # fmt: skip


async def test_a_plan_note_once_its_alerts_firing_message_is_on_its_way_is_a_skipped_message_of_the_group(
    store: Store,
) -> None:
    await store.ingest([alert(f"fp{n}", plans=[("fix", {})], **WINDOWS) for n in (1, 2)], "http://am", 0, NOW)
    plans = {j.incident.fingerprint: j for j in await store.claim("p", 50, 30, NOW) if j.kind == PLAN}
    (head,) = await store.claim("a", 8, 30, NOW + 5)
    group = await store.take_group(head, "a", NOW + 35, NOW + 5)
    assert group is not None
    sending = (
        NewDelivery("k-note", "slack/oncall", "firing", "plan fix did not run"),  # its firing message is leased
        NewDelivery("k-esc", "slack/oncall", "escalation", "escalated"),  # never grouped
    )
    assert await store.finish(plans["fp1"], "p", NOW + 6, lambda status: Outcome(SKIPPED, "x", sending))
    assert await store.end_group(head, "a", [j.id for j in group], SENT, "sent", [], NOW + 7)
    sent = (
        NewDelivery("k-late", "slack/oncall", "firing", "plan fix did not run"),  # its firing message went out
        NewDelivery("k-plain", "slack/oncall", "firing"),  # no note: a firing message of the group
    )
    assert await store.finish(plans["fp2"], "p", NOW + 8, lambda status: Outcome(SKIPPED, "x", sent))
    assert rows(store, "SELECT key, due_at, gid FROM jobs WHERE key LIKE 'k-%' ORDER BY key") == [
        ("k-esc", NOW + 6, None),
        ("k-late", NOW + 13, f"slack/oncall|skipped|{KEY}"),
        ("k-note", NOW + 11, f"slack/oncall|skipped|{KEY}"),
        ("k-plain", NOW + 13, GID),
    ]  # fmt: skip


async def test_one_claim_leases_several_groups_new_and_expired_alike(store: Store) -> None:
    def grouped(fp: str, key: str) -> RoutedAlert:
        return alert(fp, group_key=key, group_windows={"slack/oncall": 5.0})

    await store.ingest([grouped("fp1", "a")], "http://am", 0, NOW)
    assert len(await store.claim("x", 8, 30, NOW + 5)) == 1  # "x" leases group a until NOW + 35, then dies
    await store.ingest([grouped("fp2", "b"), grouped("fp3", "c")], "http://am", 0, NOW + 40)
    claimed = await store.claim("y", 8, 30, NOW + 45)  # a's lease expired, b's and c's are new: one claim, three
    assert sorted(j.incident.fingerprint for j in claimed) == ["fp1", "fp2", "fp3"]
    assert rows(store, LEASES + " ORDER BY gid") == [
        (f"slack/oncall|firing|{key}", "y", NOW + 75) for key in "abc"
    ]  # fmt: skip
