"""Grouped deliveries in the store, on both backends: one claim per group, leasing the group, takeover."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter

import pytest
from opsloop.receiver.domain import SENT, RoutedAlert
from opsloop.receiver.store import PostgresStore, SqliteStore, Store, open_store
from opsloop.receiver.store.grouping import MAX_TAKE

from tests.receiver.store.test_ops import NOW, alert

WINDOWS = {"group_key": '{}:{alertname="A"}', "group_windows": {"slack/oncall": 5.0}}


async def members(store: Store) -> dict[str, str]:
    return {j.key: j.state for v in await store.incidents(limit=100) for j in v.jobs}


async def test_a_group_waits_its_window_then_one_member_is_claimed_and_takes_the_rest(store: Store) -> None:
    await store.ingest([alert(f"fp{n}", **WINDOWS) for n in range(6)], "http://am", 0, NOW)
    assert await store.claim("w", 50, 30, NOW + 4) == []  # group_window: not due before 5s
    claimed = await store.claim("w", 50, 30, NOW + 5)
    assert len(claimed) == 1  # one member per group; its step takes the others
    (head,) = claimed
    assert head.group == 'slack/oncall|firing|{}:{alertname="A"}'
    group = await store.take_group(head, "w", NOW + 35, NOW + 5)
    assert group is not None
    assert group[0].id == head.id
    assert len(group) == 6
    assert await store.claim("w", 50, 30, NOW + 6) == []  # the group is leased: no member is claimed
    sent = [j.id for j in group[:4]]
    assert await store.end_group(head, "w", sent, SENT, "sent in message 1", [j.id for j in group[4:]], NOW + 6)
    states = await members(store)
    assert sorted(states.values()) == ["pending", "pending", "sent", "sent", "sent", "sent"]
    (follow_up,) = await store.claim("w", 50, 30, NOW + 6)  # the rest is the group's next message, due now
    assert follow_up.id in {j.id for j in group[4:]}


async def test_the_claim_of_a_member_leases_the_group_and_takeover_frees_it(store: Store) -> None:
    await store.ingest([alert(f"fp{n}", **WINDOWS) for n in range(3)], "http://am", 0, NOW)
    (first,) = await store.claim("a", 50, 30, NOW + 5)
    assert await store.claim("b", 50, 30, NOW + 5) == []  # "a"'s claim leased the group: "b" gets no member
    assert await store.take_group(first, "b", NOW + 35, NOW + 5) is None  # nor can "b" take it
    group = await store.take_group(first, "a", NOW + 35, NOW + 5)
    assert group is not None
    assert len(group) == 3
    assert await store.claim("c", 50, 30, NOW + 6) == []  # while "a" holds the group
    # "a" died: a restarted process ends its leases, group lease included, and the group is due at once.
    assert await store.expire_leases(["a"], NOW + 6) == 1
    (again,) = await store.claim("c", 50, 30, NOW + 6)
    assert again.interrupted == (1 if again.id == first.id else 0)
    assert await store.take_group(again, "c", NOW + 36, NOW + 6) is not None


def same_store(store: Store) -> Store:
    """A second store on the same database, with connections of its own: another replica."""
    if isinstance(store, PostgresStore):
        return open_store(store.dsn)
    assert isinstance(store, SqliteStore)
    return open_store(f"sqlite://{store.path}")


async def test_two_replicas_claiming_one_group_in_the_same_instant_never_split_it(store: Store) -> None:
    replica = same_store(store)
    await replica.open()
    try:
        for round_ in range(20):
            key = {**WINDOWS, "group_key": f'{{}}:{{round="{round_}"}}'}
            await store.ingest([alert(f"r{round_}-{n}", **key) for n in range(8)], "http://am", 0, NOW)
            # Each claims one member (PostgreSQL skips the row the other locked); only one may get the group.
            claims = await asyncio.gather(store.claim("a", 50, 30, NOW + 5), replica.claim("b", 50, 30, NOW + 5))
            winners = [(s, owner, jobs) for s, owner, jobs in zip((store, replica), "ab", claims, strict=True) if jobs]
            assert len(winners) == 1, f"round {round_}: both replicas claimed a member of the group"
            ((winner, owner, (head,)),) = winners
            group = await winner.take_group(head, owner, NOW + 35, NOW + 5)
            assert group is not None
            assert len(group) == 8  # the whole group, in one message
            assert await winner.end_group(head, owner, [j.id for j in group], SENT, "sent", [], NOW + 6)
        states = Counter(j.state for v in await store.incidents(limit=1000) for j in v.jobs)
        assert states == {SENT: 160}
    finally:
        await replica.close()


async def test_a_lost_group_lease_changes_nothing(store: Store) -> None:
    await store.ingest([alert(f"fp{n}", **WINDOWS) for n in range(2)], "http://am", 0, NOW)
    (a,) = await store.claim("a", 50, 30, NOW + 5)
    group = await store.take_group(a, "a", NOW + 10, NOW + 5)
    assert group is not None
    (b,) = await store.claim("b", 50, 30, NOW + 11)  # "a" stalled past its lease: "b" takes over
    assert await store.take_group(b, "b", NOW + 41, NOW + 11) is not None
    assert not await store.end_group(a, "a", [j.id for j in group], SENT, "sent", [], NOW + 12)
    assert set((await members(store)).values()) == {"pending"}


def severe(routed: RoutedAlert, severity: str) -> RoutedAlert:
    labels = {**routed.alert.labels, "severity": severity}
    return dataclasses.replace(routed, alert=dataclasses.replace(routed.alert, labels=labels))


async def test_a_large_group_due_at_once_gives_one_member_and_leaves_room_for_other_work(store: Store) -> None:
    big = [alert(f"fp{n:05}", **WINDOWS) for n in range(5000)]
    await store.ingest(big, "http://am", 0, NOW)
    await store.ingest([severe(alert("other"), "warning")], "http://am", 0, NOW + 1)  # alone, later, more urgent
    claimed = await store.claim("w", 8, 30, NOW + 5)
    assert [j.incident.fingerprint for j in claimed] == ["other", "fp00000"]  # by urgency, then due time
    head = claimed[1]
    group = await store.take_group(head, "w", NOW + 35, NOW + 5)
    assert group is not None
    assert [j.incident.fingerprint for j in group] == [f"fp{n:05}" for n in range(MAX_TAKE)]
    assert await store.claim("w", 8, 30, NOW + 6) == []  # the leased group's 4,000 others wait for it
    rest = [j.id for j in group[50:]]
    assert await store.end_group(head, "w", [j.id for j in group[:50]], SENT, "sent", rest, NOW + 6)
    (follow_up,) = await store.claim("w", 8, 30, NOW + 6)
    assert follow_up.incident.fingerprint == "fp01000"  # due since NOW + 5; the rest of message 1 since NOW + 6
    again = await store.take_group(follow_up, "w", NOW + 36, NOW + 6)
    assert again is not None
    assert again[0].id == follow_up.id
    assert sorted(j.incident.fingerprint for j in again) == [f"fp{n:05}" for n in range(50, 50 + MAX_TAKE)]


@pytest.mark.parametrize("part_rows", [None, 150])
async def test_a_group_waiting_for_its_send_slot_holds_back_every_member_but_a_page(
    store: Store, part_rows: int | None
) -> None:
    store.part_rows = part_rows  # in one write, or in parts of 150 members (the same rows either way)
    key = "slack-webhook:abc"
    assert await store.take_slot(10**9, "x", key, 1.0, NOW + 9) is None  # a message went out: next slot NOW + 10
    big = [alert(f"fp{n:05}", **WINDOWS) for n in range(MAX_TAKE + 200)]
    await store.ingest([*big, severe(alert("zz-page", **WINDOWS), "critical")], "http://am", 0, NOW)
    (page,) = await store.claim("w", 1, 30, NOW)  # a page of the group does not wait for its window
    assert page.incident.fingerprint == "zz-page"
    alone = await store.take_group(page, "w", NOW + 30, NOW)
    assert alone is not None
    await store.release_group(page, "w", [page.id], NOW + 6, NOW)  # say its own turn is later
    (head,) = await store.claim("w", 8, 30, NOW + 5)
    group = await store.take_group(head, "w", NOW + 35, NOW + 5)
    assert group is not None
    assert len(group) == MAX_TAKE
    slot = await store.group_slot(head, "w", [j.id for j in group], key, 1.0, NOW + 5, urgent=False)
    assert slot == NOW + 10
    # The 201 members not taken wait for the slot too; the page keeps its own time.
    (again,) = await store.claim("w", 8, 30, NOW + 6)
    assert again.id == page.id
    assert await store.end_group(again, "w", [page.id], SENT, "sent", [], NOW + 6)  # its claim leased the group
    assert await store.claim("w", 8, 30, NOW + 9) == []
    due = {v.incident.fingerprint: j.due_at for v in await store.incidents(limit=2000) for j in v.jobs
           if j.id != page.id}  # fmt: skip
    # A message carries at most MAX_TAKE members, lowest ids first, one per slot: the members past the
    # first MAX_TAKE of those waiting cannot go out before the slot after, and wait for that one.
    assert {fp for fp, at in due.items() if at == NOW + 10} == {f"fp{n:05}" for n in range(MAX_TAKE + 1)}
    assert {fp for fp, at in due.items() if at == NOW + 11} == {
        f"fp{n:05}" for n in range(MAX_TAKE + 1, MAX_TAKE + 200)
    }
    assert len(due) == MAX_TAKE + 200
    (next_head,) = await store.claim("w", 8, 30, NOW + 10)
    assert next_head.incident.fingerprint == "fp00000"
