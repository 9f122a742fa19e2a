"""Send slots and message references on both backends, checked against the rows they leave.

The rows are read beside the store (``rows``): each destination's slot row says when it sent last and
when its next free slot is, each held delivery has one hold row, and nothing else is written.
"""

from __future__ import annotations

from opsloop.receiver.store import Store

from tests.receiver.store.test_ops import NOW, alert
from tests.receiver.store.test_ops_rows import rows

SLOTS = "SELECT key, next_at, last_at, spacing FROM send_slots ORDER BY key"
HOLDS = "SELECT job_id, key, at, urgent FROM slot_holds ORDER BY job_id"


async def test_each_destination_keeps_its_last_send_its_next_slot_and_one_hold_per_waiting_delivery(
    store: Store,
) -> None:
    assert await store.take_slot(1, "w", "a", 1.0, NOW) is None
    assert rows(store, SLOTS) == [("a", NOW + 1, NOW, 1.0)]
    assert rows(store, HOLDS) == []
    assert await store.take_slot(2, "w", "a", 1.0, NOW + 0.5) == NOW + 1
    assert await store.take_slot(3, "w", "a", 1.0, NOW + 0.5) == NOW + 2
    assert await store.take_slot(4, "w", "b", 2.0, NOW + 0.5) is None
    assert rows(store, SLOTS) == [("a", NOW + 3, NOW, 1.0), ("b", NOW + 2.5, NOW + 0.5, 2.0)]
    assert rows(store, HOLDS) == [(2, "a", NOW + 1, 0), (3, "a", NOW + 2, 0)]
    assert await store.take_slot(2, "w", "a", 1.0, NOW + 0.9) == NOW + 1  # early: its hold stays as it was
    assert rows(store, HOLDS) == [(2, "a", NOW + 1, 0), (3, "a", NOW + 2, 0)]
    assert await store.take_slot(2, "w", "a", 1.0, NOW + 1.25) is None  # its slot: sent, the hold is gone
    assert rows(store, SLOTS) == [("a", NOW + 3, NOW + 1.25, 1.0), ("b", NOW + 2.5, NOW + 0.5, 2.0)]
    assert rows(store, HOLDS) == [(3, "a", NOW + 2, 0)]
    assert await store.take_slot(3, "w", "a", 1.0, NOW + 2) == NOW + 2.25  # an interval after the real send
    assert rows(store, HOLDS) == [(3, "a", NOW + 2.25, 0)]
    # A destination whose spacing changed (a new configuration) keeps its slots and spaces by the new one.
    assert await store.take_slot(5, "w", "a", 4.0, NOW + 2.5) == NOW + 5.25
    assert rows(store, SLOTS) == [("a", NOW + 9.25, NOW + 1.25, 4.0), ("b", NOW + 2.5, NOW + 0.5, 2.0)]


async def test_a_free_destination_sends_at_once_after_a_quiet_spell(store: Store) -> None:
    assert await store.take_slot(1, "w", "a", 1.0, NOW) is None
    assert await store.take_slot(2, "w", "a", 1.0, NOW + 10) is None
    assert rows(store, SLOTS) == [("a", NOW + 11, NOW + 10, 1.0)]
    assert rows(store, HOLDS) == []


async def test_an_urgent_hold_goes_first_even_in_the_slot_a_held_delivery_comes_back_for(store: Store) -> None:
    assert await store.take_slot(1, "w", "a", 1.0, NOW) is None
    assert await store.take_slot(2, "w", "a", 1.0, NOW) == NOW + 1
    assert await store.take_slot(3, "w", "a", 1.0, NOW + 5) is None  # a late send: job 2's slot is long past
    assert await store.take_slot(4, "w", "a", 1.0, NOW + 5, urgent=True) == NOW + 6
    assert rows(store, HOLDS) == [(2, "a", NOW + 1, 0), (4, "a", NOW + 6, 1)]
    # Job 2 comes back after the late send: the next slot, NOW + 6, is the urgent one's; job 2 takes the one after.
    assert await store.take_slot(2, "w", "a", 1.0, NOW + 5.5) == NOW + 7
    assert rows(store, HOLDS) == [(2, "a", NOW + 7, 0), (4, "a", NOW + 6, 1)]


async def test_an_urgent_delivery_moves_back_only_the_holds_at_or_after_its_slot(store: Store) -> None:
    assert await store.take_slot(1, "w", "a", 1.0, NOW) is None
    assert [await store.take_slot(n, "w", "a", 1.0, NOW) for n in (2, 3)] == [NOW + 1, NOW + 2]
    assert await store.take_slot(2, "w", "a", 1.0, NOW + 1) is None  # job 2 sends in its slot
    assert await store.take_slot(4, "w", "a", 1.0, NOW + 1.5, urgent=True) == NOW + 2
    assert rows(store, HOLDS) == [(3, "a", NOW + 3, 0), (4, "a", NOW + 2, 1)]
    assert rows(store, SLOTS) == [("a", NOW + 4, NOW + 1, 1.0)]
    assert await store.take_slot(5, "w", "a", 1.0, NOW + 1.5, urgent=True) == NOW + 3
    assert rows(store, HOLDS) == [(3, "a", NOW + 4, 0), (4, "a", NOW + 2, 1), (5, "a", NOW + 3, 1)]
    assert rows(store, SLOTS) == [("a", NOW + 5, NOW + 1, 1.0)]


async def test_an_urgent_delivery_at_a_free_destination_sends_at_once(store: Store) -> None:
    assert await store.take_slot(1, "w", "a", 1.0, NOW, urgent=True) is None
    assert rows(store, SLOTS) == [("a", NOW + 1, NOW, 1.0)]
    assert rows(store, HOLDS) == []


async def test_a_pause_asked_by_the_destination_only_ever_pushes_its_next_slot_later(store: Store) -> None:
    await store.push_slot("a", NOW + 30)  # a destination never used: nothing to push
    assert rows(store, SLOTS) == []
    assert await store.take_slot(1, "w", "a", 1.0, NOW) is None
    await store.push_slot("a", NOW + 30)
    assert rows(store, SLOTS) == [("a", NOW + 30, NOW, 1.0)]
    await store.push_slot("a", NOW + 10)  # an earlier end changes nothing
    assert rows(store, SLOTS) == [("a", NOW + 30, NOW, 1.0)]


async def test_deliveries_replaced_while_held_give_their_slots_back(store: Store) -> None:
    await store.ingest([alert("a"), alert("b"), alert("c")], "", 0, NOW)
    first, second, third = await store.claim("w", 10, 30, NOW)
    assert await store.take_slot(first.id, "w", "k", 1.0, NOW) is None
    assert await store.take_slot(second.id, "w", "k", 1.0, NOW) == NOW + 1
    assert await store.take_slot(third.id, "w", "k", 1.0, NOW) == NOW + 2
    assert await store.take_slot(99, "w", "other", 1.0, NOW) is None
    assert await store.take_slot(98, "w", "other", 1.0, NOW) == NOW + 1
    await store.ingest([alert("b", status="resolved")], "", 0, NOW + 0.5)
    # the queue still ends after the last hold (job c's): the next free slot stays
    assert rows(store, HOLDS) == [(third.id, "k", NOW + 2, 0), (98, "other", NOW + 1, 0)]
    assert rows(store, SLOTS) == [("k", NOW + 3, NOW, 1.0), ("other", NOW + 2, NOW, 1.0)]
    await store.ingest([alert("c", status="resolved")], "", 0, NOW + 0.6)
    # no hold left: the next slot is an interval after the last real send
    assert rows(store, HOLDS) == [(98, "other", NOW + 1, 0)]
    assert rows(store, SLOTS) == [("k", NOW + 1, NOW, 1.0), ("other", NOW + 2, NOW, 1.0)]


async def test_a_message_reference_is_saved_replaced_and_read_by_key(store: Store) -> None:
    assert await store.message_ref("k") is None
    await store.save_message_ref("k", "1.1", NOW)
    await store.save_message_ref("j", "2.2", NOW + 1)
    await store.save_message_ref("k", "3.3", NOW + 2)
    assert rows(store, "SELECT key, ref, at FROM message_refs ORDER BY key") == [
        ("j", "2.2", NOW + 1), ("k", "3.3", NOW + 2),
    ]  # fmt: skip
    assert [await store.message_ref(key) for key in ("k", "j", "x")] == ["3.3", "2.2", None]


async def test_a_slot_freed_by_a_replaced_urgent_delivery_goes_to_the_delivery_held_for_it_too(store: Store) -> None:
    await store.ingest([alert(fp) for fp in "abcd"], "", 0, NOW)
    a, b, c, d = await store.claim("w", 10, 30, NOW)
    assert await store.take_slot(a.id, "w", "k", 1.0, NOW) is None
    assert await store.take_slot(b.id, "w", "k", 1.0, NOW) == NOW + 1
    assert await store.take_slot(c.id, "w", "k", 1.0, NOW + 2) is None  # b's slot went unused; c sends at once
    assert await store.take_slot(b.id, "w", "k", 1.0, NOW + 2.5) == NOW + 3  # an interval after c's send
    assert await store.take_slot(d.id, "w", "k", 1.0, NOW + 2.5, urgent=True) == NOW + 3  # ahead of b: b goes after
    assert rows(store, HOLDS) == [(b.id, "k", NOW + 3, 0), (d.id, "k", NOW + 3, 1)]
    await store.ingest([alert("d", status="resolved")], "", 0, NOW + 2.6)  # d is replaced: its slot is free
    assert rows(store, HOLDS) == [(b.id, "k", NOW + 3, 0)]
    assert rows(store, SLOTS) == [("k", NOW + 4, NOW + 2, 1.0)]
    assert await store.take_slot(b.id, "w", "k", 1.0, NOW + 3) is None  # b takes it
