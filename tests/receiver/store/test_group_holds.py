"""A group held back for its send slot, on both backends: members that join meanwhile are due at the slot
(a page is not), a paced message that went out holds the group's rest and the members waiting with it
until the next slot in tiers as large as the message, a full message sizes the group's next take, and old
holds are removed.

The rows are read beside the store (``rows``), not through its own reads.
"""

from __future__ import annotations

import pytest
from opsloop.receiver.domain import PLAN, SENT, SKIPPED, NewDelivery, Outcome, group_id
from opsloop.receiver.store import Store
from opsloop.receiver.store.grouping import MAX_TAKE

from tests.receiver.store.test_group_ops import operations
from tests.receiver.store.test_group_parts import states, taken_group
from tests.receiver.store.test_grouping import WINDOWS, severe
from tests.receiver.store.test_ops import NOW, alert
from tests.receiver.store.test_ops_rows import rows

KEY = "slack-webhook:abc"
GID = group_id("slack/oncall", "firing", str(WINDOWS["group_key"]))


def due_times(store: Store) -> dict[str, float]:
    """By alert fingerprint, the due time of its pending delivery."""
    found = rows(
        store,
        "SELECT i.fingerprint, j.due_at FROM jobs j JOIN incidents i ON i.id = j.incident_id WHERE j.state = 'pending'",
    )
    return dict(found)


async def test_members_joining_a_group_held_for_its_slot_are_due_at_the_slot_but_a_page_is_not(store: Store) -> None:
    assert await store.take_slot(10**9, "x", KEY, 1.0, NOW + 19) is None  # a message went out: next slot NOW + 20
    await store.ingest([alert(f"fp{n}", **WINDOWS) for n in range(3)], "http://am", 0, NOW)
    (head,) = await store.claim("w", 8, 30, NOW + 5)
    group = await store.take_group(head, "w", NOW + 35, NOW + 5)
    assert group is not None
    assert await store.group_slot(head, "w", [j.id for j in group], KEY, 1.0, NOW + 5, urgent=False) == NOW + 20
    assert rows(store, "SELECT gid, until FROM group_holds") == [(GID, NOW + 20)]

    # Joined at NOW + 6 with a window of 5 s: due at the group's slot, not at NOW + 11; a page at once.
    late = [alert("late1", **WINDOWS), alert("late2", **WINDOWS), severe(alert("page", **WINDOWS), "critical")]
    await store.ingest(late, "http://am", 0, NOW + 6)
    assert due_times(store) == {
        **{f"fp{n}": NOW + 20 for n in range(3)}, "late1": NOW + 20, "late2": NOW + 20, "page": NOW + 6,
    }  # fmt: skip
    assert [j.incident.fingerprint for j in await store.claim("w", 8, 30, NOW + 11)] == ["page"]

    # A hold that has passed changes nothing: a member joining after it is due after its own window.
    await store.ingest([alert("after", **WINDOWS)], "http://am", 0, NOW + 21)
    assert due_times(store)["after"] == NOW + 26


async def test_a_message_a_plan_queues_into_a_held_group_is_due_at_the_slot(store: Store) -> None:
    await store.ingest([alert(f"fp{n}", plans=[("fix", {})], **WINDOWS) for n in (1, 2)], "http://am", 0, NOW)
    plans = [j for j in await store.claim("p", 50, 30, NOW) if j.kind == PLAN]
    assert await store.take_slot(10**9, "x", KEY, 1.0, NOW + 19) is None  # a message went out: next slot NOW + 20
    (head,) = await store.claim("w", 8, 30, NOW + 5)
    group = await store.take_group(head, "w", NOW + 35, NOW + 5)
    assert group is not None
    assert await store.group_slot(head, "w", [j.id for j in group], KEY, 1.0, NOW + 5, urgent=False) == NOW + 20
    # Queued at NOW + 6 into the held group: due at its slot, not after the window (NOW + 11).
    told = (NewDelivery("k-plain", "slack/oncall", "firing"),)
    assert await store.finish(plans[0], "p", NOW + 6, lambda status: Outcome(SKIPPED, "x", told)) is not None
    assert rows(store, "SELECT due_at, gid FROM jobs WHERE key = 'k-plain'") == [(NOW + 20, GID)]
    # Once the hold passed, a message the other plan queues is due after the window.
    later = (NewDelivery("k-later", "slack/oncall", "firing"),)
    assert await store.finish(plans[1], "p", NOW + 21, lambda status: Outcome(SKIPPED, "x", later)) is not None
    assert rows(store, "SELECT due_at, gid FROM jobs WHERE key = 'k-later'") == [(NOW + 26, GID)]


async def test_a_paced_message_holds_the_rest_and_the_waiting_members_until_the_next_slot(store: Store) -> None:
    await store.ingest([alert(f"fp{n:05}", **WINDOWS) for n in range(MAX_TAKE + 10)], "http://am", 0, NOW)
    (head,) = await store.claim("w", 8, 30, NOW + 5)
    group = await store.take_group(head, "w", NOW + 35, NOW + 5)
    assert group is not None
    assert await store.group_slot(head, "w", [j.id for j in group], KEY, 1.0, NOW + 5, urgent=False) is None
    done, rest = [j.id for j in group[:700]], [j.id for j in group[700:]]
    ended = await store.end_group(head, "w", done, SENT, "sent", rest, NOW + 5.5, "ts-1", next_slot=(NOW + 6, 1.0))
    assert ended
    assert rows(store, f"SELECT COUNT(*) FROM jobs WHERE state = '{SENT}'") == [(700,)]
    # The 300 of the message's rest and the 10 never taken fit in a message as large: all due at the next slot.
    due = due_times(store)
    assert len(due) == MAX_TAKE + 10 - 700
    assert set(due.values()) == {NOW + 6}
    assert rows(store, "SELECT COUNT(*) FROM group_leases") == [(0,)]
    assert rows(store, "SELECT gid, until FROM group_holds") == [(GID, NOW + 6)]
    assert await store.claim("w", 8, 30, NOW + 5.9) == []
    (following,) = await store.claim("w", 8, 30, NOW + 6)
    assert following.id == rest[0]


async def test_a_paced_message_leaves_members_past_the_next_message_for_the_slot_after(store: Store) -> None:
    await store.ingest([alert(f"fp{n:05}", **WINDOWS) for n in range(MAX_TAKE + 300)], "http://am", 0, NOW)
    (head,) = await store.claim("w", 8, 30, NOW + 5)
    group = await store.take_group(head, "w", NOW + 35, NOW + 5)
    assert group is not None
    done, rest = [j.id for j in group[:400]], [j.id for j in group[400:]]
    assert await store.end_group(head, "w", done, SENT, "sent", rest, NOW + 5.5, "ts-1", next_slot=(NOW + 6, 1.0))
    # 900 wait. The message carried 400: the 600 taken and not sent are due at the next slot, lowest ids first,
    # and the others in tiers of 400 by id, a slot each, counted after them.
    due = due_times(store)
    tiers = {at: {fp for fp, when in due.items() if when == at} for at in set(due.values())}
    assert tiers == {
        NOW + 6: {f"fp{n:05}" for n in range(400, MAX_TAKE)},
        NOW + 7: {f"fp{n:05}" for n in range(MAX_TAKE, MAX_TAKE + 200)},
        NOW + 8: {f"fp{n:05}" for n in range(MAX_TAKE + 200, MAX_TAKE + 300)},
    }


async def test_a_message_of_a_few_members_holds_the_others_in_tiers_as_small(store: Store) -> None:
    """A destination that took ten alerts in a message: the members that joined after the group was taken
    wait in tiers of ten, one slot apart, after the 25 taken and not sent."""
    await store.ingest([alert(f"a{n:02}", **WINDOWS) for n in range(35)], "http://am", 0, NOW)
    (head,) = await store.claim("w", 8, 30, NOW + 5)
    group = await store.take_group(head, "w", NOW + 35, NOW + 5)
    assert group is not None
    ids = [j.id for j in group]
    await store.ingest([alert(f"b{n:02}", **WINDOWS) for n in range(25)], "http://am", 0, NOW - 1)  # due NOW + 4
    assert await store.end_group(head, "w", ids[:10], SENT, "sent", ids[10:], NOW + 5.5, "ts-1", (NOW + 6, 2.0))
    due = due_times(store)
    assert {fp: at for fp, at in due.items() if fp.startswith("a")} == {f"a{n:02}": NOW + 6 for n in range(10, 35)}
    assert {fp: at for fp, at in due.items() if fp.startswith("b")} == {
        **{f"b{n:02}": NOW + 10 for n in range(5)},
        **{f"b{n:02}": NOW + 12 for n in range(5, 15)},
        **{f"b{n:02}": NOW + 14 for n in range(15, 25)},
    }


HOUR = 3600.0
"""How long a hold is kept after it ended, as documented."""


async def hold_group(store: Store, name: str, now: float) -> str:
    """A group of one alert, alone in group ``name``, sent at ``now`` and held until a second later."""
    key = f'{{}}:{{alertname="{name}"}}'
    await store.ingest(
        [alert(f"fp-{name}", group_key=key, group_windows={"slack/oncall": 5.0})], "http://am", 0, now - 5
    )
    (head,) = await store.claim("w", 8, 30, now)
    group = await store.take_group(head, "w", now + 30, now)
    assert group is not None
    assert await store.end_group(head, "w", [head.id], SENT, "sent", [], now, next_slot=(now + 1, 1.0))
    return group_id("slack/oncall", "firing", key)


async def test_a_hold_over_for_longer_than_an_hour_is_removed_by_the_next_hold(store: Store) -> None:
    old = await hold_group(store, "A", NOW)  # held until NOW + 1
    recent = await hold_group(store, "B", NOW + 1 + HOUR + 0.5)  # A's hold ended just over an hour ago
    assert {gid for (gid,) in rows(store, "SELECT gid FROM group_holds")} == {recent}
    latest = await hold_group(store, "C", NOW + 2 + HOUR + 0.5)  # B's hold ended a moment ago: kept
    assert dict(rows(store, "SELECT gid, until FROM group_holds")) == {
        recent: NOW + 2 + HOUR + 0.5,
        latest: NOW + 3 + HOUR + 0.5,
    }
    assert old not in {recent, latest}


@pytest.mark.parametrize(("part_rows", "writes"), [(5, 1), (4, 2)])
async def test_a_group_hold_counts_as_one_change_of_the_part_it_is_written_in(
    store: Store, part_rows: int, writes: int
) -> None:
    store.part_rows = part_rows
    head, ids = await taken_group(store, 4)
    ran = operations(store)
    assert await store.end_group(head, "a", ids[:2], SENT, "sent", ids[2:], NOW + 6, next_slot=(NOW + 7, 1.0))
    # Two members ended, two given back until the slot and the group's hold: five changes, one write of five.
    assert len([op for op in ran if op.gi_code.co_name == "while_owned"]) == writes
    assert states(store) == {
        **{i: (SENT, NOW + 5, None, head.id) for i in ids[:2]},
        **{i: ("pending", NOW + 7, None, None) for i in ids[2:]},
    }
    assert rows(store, "SELECT gid, until FROM group_holds") == [(GID, NOW + 7)]


async def end_full(store: Store, fit: int, at: float) -> list[int]:
    """Claim and take the group at ``at``, send its first ``fit`` members and hold it until a second later;
    returns the ids taken."""
    (head,) = await store.claim("w", 8, 30, at)
    group = await store.take_group(head, "w", at + 30, at)
    assert group is not None
    ids = [j.id for j in group]
    assert await store.end_group(head, "w", ids[:fit], SENT, "sent", ids[fit:], at, "ts", next_slot=(at + 1, 1.0))
    return ids


async def test_after_a_full_message_the_next_take_is_a_quarter_larger_than_it(store: Store) -> None:
    await store.ingest([alert(f"fp{n:05}", **WINDOWS) for n in range(MAX_TAKE + 300)], "http://am", 0, NOW)
    taken = await end_full(store, 400, NOW + 5)
    assert len(taken) == MAX_TAKE
    assert rows(store, "SELECT until, size FROM group_holds") == [(NOW + 6, 400)]
    # 900 wait: the next take holds 501 of them (400 * 1.25, rounded down, and one), lowest ids first.
    pending = [i for (i,) in rows(store, "SELECT id FROM jobs WHERE state = 'pending' ORDER BY id")]
    assert len(pending) == 900
    retaken = await end_full(store, 100, NOW + 6)
    assert retaken == pending[:501]
    assert rows(store, "SELECT until, size FROM group_holds") == [(NOW + 7, 100)]
    assert len(await end_full(store, 10, NOW + 7)) == 126


async def test_a_message_that_holds_all_it_took_forgets_the_size_and_a_refused_slot_keeps_it(store: Store) -> None:
    await store.ingest([alert(f"fp{n:05}", **WINDOWS) for n in range(700)], "http://am", 0, NOW)
    await end_full(store, 200, NOW + 5)
    assert rows(store, "SELECT size FROM group_holds") == [(200,)]
    (head,) = await store.claim("w", 8, 30, NOW + 6)
    group = await store.take_group(head, "w", NOW + 36, NOW + 6)
    assert group is not None
    assert len(group) == 251
    ids = [j.id for j in group]
    # The slot is taken by another delivery meanwhile: refused, the group is held and its size kept.
    assert await store.take_slot(ids[-1] + 1000, "other", KEY, 5.0, NOW + 6, urgent=False) is None
    assert await store.group_slot(head, "w", ids, KEY, 5.0, NOW + 6, urgent=False) == NOW + 11
    assert rows(store, "SELECT until, size FROM group_holds") == [(NOW + 11, 200)]
    # Then a message that holds every member it took: the size goes, the next take is MAX_TAKE again.
    await store.ingest([alert(f"late{n:05}", **WINDOWS) for n in range(MAX_TAKE)], "http://am", 0, NOW + 6)
    taken = await end_full(store, 251, NOW + 11)
    assert len(taken) == 251
    assert rows(store, "SELECT until, size FROM group_holds") == [(NOW + 12, None)]
    assert len(await end_full(store, 1, NOW + 12)) == MAX_TAKE
