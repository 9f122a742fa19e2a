"""Send slots shared by every replica: one message per interval per destination (a Slack webhook or channel).

A delivery asks for a slot before it sends. The next free slot of its destination is reserved for it in
the store; if that slot is now, it sends; otherwise it is released until its slot and keeps the slot
(a hold), so it neither waits in a worker nor queues again behind later work. A hold claimed late (a
worker polls) moves on if the previous message went out less than an interval ago: spacing is kept
between real sends, whichever replica makes them. A 429 pushes the next slot back.

Message references (which Slack message is about which alert) live here too, so any replica can edit
the message another one posted.
"""

from __future__ import annotations

from collections.abc import Sequence

from opsloop.receiver.store.driver import Op, Stmt, marks

UPSERT_SLOT = (
    "INSERT INTO send_slots (key, next_at, last_at, spacing) VALUES (?, ?, 0, ?) "
    "ON CONFLICT (key) DO UPDATE SET spacing = excluded.spacing"
)


def take_slot(
    job_id: int, key: str, interval: float, now: float, row_lock: str, urgent: bool = False
) -> Op[float | None]:
    """None: send now (recorded as the destination's last send). A time: release the job until then.

    An ``urgent`` delivery (a critical alert, an escalation) takes the next slot after the last real
    send and the urgent ones already held, ahead of every other held one; those move back one interval.
    """
    yield Stmt(UPSERT_SLOT, (key, now, interval))
    result = yield Stmt(f"SELECT next_at, last_at FROM send_slots WHERE key = ?{row_lock}", (key,))
    next_at, last_at = result.rows[0]
    held = yield Stmt("SELECT at, urgent FROM slot_holds WHERE job_id = ?", (job_id,))
    if held.rows:
        at = max(held.rows[0][0], last_at + interval)
        if not held.rows[0][1]:  # an urgent hold goes first, even when it is claimed a little later
            result = yield Stmt("SELECT MIN(at) FROM slot_holds WHERE key = ? AND urgent = 1", (key,))
            if result.rows[0][0] is not None and result.rows[0][0] <= at:
                at = max(at, result.rows[0][0] + interval)
        if at > now:
            yield Stmt("UPDATE slot_holds SET at = ? WHERE job_id = ?", (at, job_id))
            return at
        yield Stmt("DELETE FROM slot_holds WHERE job_id = ?", (job_id,))
    else:
        slot = max(now, next_at, last_at + interval)
        if urgent:  # after the last send and the urgent ones already held, ahead of all others
            result = yield Stmt("SELECT MAX(at) FROM slot_holds WHERE key = ? AND urgent = 1", (key,))
            slot = max(now, last_at + interval, (result.rows[0][0] or 0) + interval)
            if slot < next_at:
                yield Stmt("UPDATE slot_holds SET at = at + ? WHERE key = ? AND at >= ?", (interval, key, slot))
        yield Stmt("UPDATE send_slots SET next_at = ? WHERE key = ?", (max(next_at, slot) + interval, key))
        if slot > now:
            yield Stmt(
                "INSERT INTO slot_holds (job_id, key, at, urgent) VALUES (?, ?, ?, ?)", (job_id, key, slot, int(urgent))
            )
            return slot
    yield Stmt("UPDATE send_slots SET last_at = ? WHERE key = ?", (now, key))
    return None


def push_slot(key: str, until: float, row_lock: str) -> Op[None]:
    """The destination asked for a pause (429 Retry-After): no new slot before ``until``."""
    result = yield Stmt(f"SELECT next_at FROM send_slots WHERE key = ?{row_lock}", (key,))
    if result.rows and result.rows[0][0] < until:
        yield Stmt("UPDATE send_slots SET next_at = ? WHERE key = ?", (until, key))


def release_holds(job_ids: Sequence[int], row_lock: str) -> Op[None]:
    """Jobs that will not send give their slots back: each destination's queue ends after its last hold."""
    if not job_ids:
        return
    result = yield Stmt(f"SELECT DISTINCT key FROM slot_holds WHERE job_id IN ({marks(job_ids)})", job_ids)
    yield Stmt(f"DELETE FROM slot_holds WHERE job_id IN ({marks(job_ids)})", job_ids)
    for (key,) in result.rows:
        slots = yield Stmt(f"SELECT last_at, spacing FROM send_slots WHERE key = ?{row_lock}", (key,))
        last_at, spacing = slots.rows[0]
        held = yield Stmt("SELECT MAX(at) FROM slot_holds WHERE key = ?", (key,))
        latest = held.rows[0][0]
        yield Stmt(
            "UPDATE send_slots SET next_at = ? WHERE key = ?",
            ((latest if latest is not None else last_at) + spacing, key),
        )


def message_ref(key: str) -> Op[str | None]:
    """Where a message already sent about ``key`` is (a Slack ``ts``), for editing it in place."""
    result = yield Stmt("SELECT ref FROM message_refs WHERE key = ?", (key,))
    return result.rows[0][0] if result.rows else None


def save_message_ref(key: str, ref: str, now: float) -> Op[None]:
    yield Stmt(
        "INSERT INTO message_refs (key, ref, at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET ref = ?, at = ?",
        (key, ref, now, ref, now),
    )
