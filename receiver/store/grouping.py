"""Grouped deliveries: one message per Alertmanager group, per notifier and message class.

A firing or resolved delivery that arrives with a ``groupKey`` joins a group (``gid``: notifier, class and
group key) and is due ``group_window`` after it arrived. The claim that takes one member leases the whole
group in the same transaction (``group_leases``, renewed with the claimed job's own lease; ``lease``):
two replicas claiming members of one group in the same instant never both get it, and while the lease
is held no replica claims another member and no resolution replaces one, so the members of one message
are sent together once (a group refused its send slot is held back under a lease of its own,
``holding``: nothing of it is being sent then, so a resolution does replace a member). Each member sent
records on its job row the message it went out in (``batch``: the id of the job that carried it, and
``ref``: its id at the notifier); members that did not fit are released as the next message of the group.

Plain ``CREATE TABLE IF NOT EXISTS`` tables, so a store created before grouping existed gains them on open
and its older deliveries simply go alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from opsloop.receiver.domain import DELIVERY, GROUPED, Job, Kind, group_id
from opsloop.receiver.store.driver import Op, Stmt, marks

GROUPS_SCHEMA = """
CREATE TABLE IF NOT EXISTS group_leases (
    gid TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS group_holds (
    gid TEXT PRIMARY KEY,
    until {real} NOT NULL,
    size INTEGER
);
CREATE INDEX IF NOT EXISTS group_holds_until ON group_holds (until);
CREATE TABLE IF NOT EXISTS incident_groups (
    incident_id BIGINT NOT NULL,
    notifier TEXT NOT NULL,
    group_key TEXT NOT NULL,
    wait {real} NOT NULL,
    PRIMARY KEY (incident_id, notifier)
)
"""
MAX_TAKE = 1000
"""Members one worker takes for one message; more wait for the next one (no message holds more)."""
TAKE_MARGIN = 1.25
"""A group whose last message was full (members taken were left over) is taken this many times that
message's size, not ``MAX_TAKE``: a destination that holds 400 alerts a message would otherwise read 1,000
members, render them all to fit 400, and write 600 back each time. When all that was taken fits, the
size is forgotten and the next take is ``MAX_TAKE`` again, so a message never stays smaller than fits."""
IN_LEASED_GROUP = (
    "(jobs.gid IS NOT NULL AND EXISTS (SELECT 1 FROM group_leases l WHERE l.gid = jobs.gid AND l.until >= ?))"
)
"""True for a job whose group a worker holds now, to send it or to hold it back (binds the current time)."""
HOLDING = "hold:"
"""The owner prefix of a refused group's lease while its members are held back (``holding``)."""
IN_SENDING_GROUP = (
    "(jobs.gid IS NOT NULL AND EXISTS (SELECT 1 FROM group_leases l WHERE l.gid = jobs.gid AND l.until >= ? "
    f"AND substr(l.owner, 1, {len(HOLDING)}) <> '{HOLDING}'))"
)
"""True for a job whose group a worker may be sending now, a message about it rendered or on its way
(binds the current time); a group being held back is not."""


HELD_DUE = "COALESCE((SELECT until FROM group_holds WHERE gid = ? AND until > ?), ?)"
"""A new member's due time (binds its group, its own due time twice): the time its group is held back to
(``held``), when that is later. Without it, members joining a group that waits for its send slot would
each come due on their own, and each would take the group only to find it refused its slot again."""
HOLD_KEPT = 3600.0
"""Seconds a group's hold is kept after it ended, before the next hold written removes it."""


@dataclass(frozen=True)
class Placement:
    """Where a new delivery goes: its group (None: alone), when it is due, or folded into a pending one."""

    gid: str | None
    due_at: float
    folded: bool = False


def remember(incident_id: int, notifier: str, group_key: str, wait: float) -> Op[None]:
    """The group an alert belongs to for a notifier, so messages queued later (a plan's) join it too."""
    yield Stmt(
        "INSERT INTO incident_groups (incident_id, notifier, group_key, wait) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (incident_id, notifier) DO UPDATE SET group_key = excluded.group_key, wait = excluded.wait",
        (incident_id, notifier, group_key, wait),
    )


def place(incident_id: int, notifier: str, kind: Kind, note: str, now: float) -> Op[Placement]:
    """The group of a delivery queued after the webhook (a plan that did not run, a resolution).

    A "plan did not run" note while the alert's firing message has not gone out yet is folded into that
    message (which says what automation did when it is sent); after it went out, the note is a message of
    its own class (``skipped``), never a second FIRING that reads as a duplicate.
    """
    if kind not in GROUPED:
        return Placement(None, now)
    found = yield Stmt("SELECT group_key, wait FROM incident_groups WHERE incident_id = ? AND notifier = ?",
                       (incident_id, notifier))  # fmt: skip
    if not found.rows:
        return Placement(None, now)
    group_key, wait = found.rows[0]
    klass: str = kind
    if kind == "firing" and note:
        # A message being sent right now (leased, alone or with its group) may be rendered already.
        prior = yield Stmt(
            "SELECT CASE WHEN state = 'pending' AND (lease_owner IS NOT NULL OR "
            f"{IN_SENDING_GROUP}) THEN 'sending' ELSE state END FROM jobs "
            "WHERE incident_id = ? AND target = ? AND kind = ? AND notify_kind = 'firing'",
            (now, incident_id, notifier, DELIVERY),
        )
        states = {row[0] for row in prior.rows}
        if "pending" in states:
            return Placement(None, now, folded=True)
        klass = "skipped" if states & {"sent", "sending"} else "firing"
    return Placement(group_id(notifier, klass, group_key), now + wait)


def lease(gids: Sequence[str], owner: str, until: float, now: float, skip_locked: str) -> Op[set[str]]:
    """Lease these groups to ``owner`` within the claim that takes a member of each; returns the groups
    leased, whose members the claim keeps (it gives back the others).

    A group is free when its lease row is missing or expired and no other transaction holds that row. On
    PostgreSQL the rows are locked with ``SKIP LOCKED``: of two replicas claiming members of one group at
    once, the second finds the row locked (or, for a group's first lease, inserted) by the first and leaves
    the group to it, and a claim never waits for a worker that holds the row. A claim only ever waits for
    another claim inserting the same group's first row, in gid order, so claims cannot deadlock.
    """
    if not gids:
        return set()
    found = yield Stmt(f"SELECT gid, until FROM group_leases WHERE gid IN ({marks(gids)}){skip_locked}", gids)
    free = sorted(gid for gid, expires in found.rows if expires < now)
    seen = {row[0] for row in found.rows}
    unseen = [gid for gid in gids if gid not in seen]
    if unseen and skip_locked:  # not returned: missing, or locked by another transaction (then not free)
        present = yield Stmt(f"SELECT gid FROM group_leases WHERE gid IN ({marks(unseen)})", unseen)
        seen = {row[0] for row in present.rows}
        unseen = [gid for gid in unseen if gid not in seen]
    leased = set(free)
    if free:
        yield Stmt(f"UPDATE group_leases SET owner = ?, until = ? WHERE gid IN ({marks(free)})", (owner, until, *free))
    if unseen:
        new = sorted(unseen)
        inserted = yield Stmt(
            f"INSERT INTO group_leases (gid, owner, until) VALUES {','.join(['(?, ?, ?)'] * len(new))} "
            "ON CONFLICT (gid) DO NOTHING RETURNING gid",
            [value for gid in new for value in (gid, owner, until)],
        )
        leased |= {row[0] for row in inserted.rows}
    return leased


def take(job: Job, owner: str, until: float, now: float) -> Op[list[int] | None]:
    """Renew ``owner``'s lease of ``job``'s group (taken when ``job`` was claimed; or take it if it is free)
    and return its pending members (``job`` first), at most ``MAX_TAKE`` (fewer after a full message, see
    ``TAKE_MARGIN``); None when another worker holds the group."""
    leased = yield Stmt(
        "INSERT INTO group_leases (gid, owner, until) VALUES (?, ?, ?) ON CONFLICT (gid) DO UPDATE "
        "SET owner = excluded.owner, until = excluded.until "
        "WHERE group_leases.owner = excluded.owner OR group_leases.until < ?",
        (job.group, owner, until, now),
    )
    if leased.rowcount != 1:
        return None
    full = yield Stmt("SELECT size FROM group_holds WHERE gid = ? AND size IS NOT NULL", (job.group,))
    limit = min(MAX_TAKE, int(full.rows[0][0] * TAKE_MARGIN) + 1) if full.rows else MAX_TAKE
    found = yield Stmt(
        "SELECT id FROM jobs WHERE gid = ? AND state = 'pending' "
        "AND (id = ? OR lease_owner = ? OR lease_until IS NULL OR lease_until < ?) ORDER BY id LIMIT ?",
        (job.group, job.id, owner, now, limit),
    )
    ids = [row[0] for row in found.rows]
    return [job.id, *(i for i in ids if i != job.id)]


def firing_pending(target: str, member_ids: Sequence[int]) -> Op[bool]:
    """Whether a firing (or escalation) message about one of these members' alerts is still to be sent."""
    # CROSS JOIN: read from the members (at most MAX_TAKE) to their alerts' jobs, never all pending jobs.
    found = yield Stmt(
        f"SELECT 1 FROM jobs j CROSS JOIN jobs f WHERE j.id IN ({marks(member_ids)}) AND f.incident_id = j.incident_id "
        "AND f.kind = ? AND f.target = ? AND f.notify_kind IN ('firing', 'escalation') AND f.state = 'pending' LIMIT 1",
        (*member_ids, DELIVERY, target),
    )
    return bool(found.rows)


def held_slot(member_ids: Sequence[int]) -> Op[int | None]:
    """The member already holding the group's send slot, if one does."""
    found = yield Stmt(f"SELECT job_id FROM slot_holds WHERE job_id IN ({marks(member_ids)}) ORDER BY at LIMIT 1",
                       member_ids)  # fmt: skip
    return found.rows[0][0] if found.rows else None


def release(gid: str, owner: str, member_ids: Sequence[int], due_at: float, now: float) -> Op[None]:
    """Give the group back: its members are due at ``due_at`` (its send slot, or a retry)."""
    yield from give_back(member_ids, due_at, now)
    yield from unlease(gid, owner)


def give_back(member_ids: Sequence[int], due_at: float, now: float) -> Op[None]:
    """Members taken with the group are due at ``due_at``, their leases ended (the group's lease stays)."""
    if member_ids:
        yield Stmt(
            "UPDATE jobs SET due_at = ?, lease_owner = NULL, lease_until = NULL, updated_at = ? "
            f"WHERE state = 'pending' AND id IN ({marks(member_ids)})",
            (due_at, now, *member_ids),
        )


def holding(gid: str, owner: str, due_at: float) -> Op[None]:
    """A refused group's lease is kept only to hold its members back: renamed (``HOLDING``), so a resolution
    replaces a firing member meanwhile (nothing of the group is being sent), and ending at its slot
    ``due_at`` at the latest, when its members are due again anyway."""
    yield Stmt(
        "UPDATE group_leases SET owner = ?, until = CASE WHEN until < ? THEN until ELSE ? END "
        "WHERE gid = ? AND owner = ?",
        (HOLDING + owner, due_at, due_at, gid, owner),
    )


def unlease(gid: str, owner: str) -> Op[None]:
    yield Stmt("DELETE FROM group_leases WHERE gid = ? AND owner = ?", (gid, owner))


def waiting(gid: str, due_at: float, now: float) -> Op[list[int]]:
    """The group waits for its send slot at ``due_at``: so do its members not taken (past ``MAX_TAKE``, or
    joined since), else each would be claimed, take the group and be sent back, one claim after another.
    These are the members that wait, by id; a page or an escalation (urgency below 2) keeps its own time:
    it takes an earlier slot.

    Read while the group lease is held, so no other worker changes these members meanwhile (on SQLite
    beside the writer, see ``GroupOps.group_slot``); a member that joins after the group's hold is written
    (``held``) is due at the slot, one that joins between the read and that write after its own
    ``group_window``, and if that is before the slot, the group's next refusal holds it back."""
    found = yield Stmt(
        "SELECT id FROM jobs WHERE gid = ? AND state = 'pending' AND urgency >= 2 AND due_at < ? "
        "AND (lease_until IS NULL OR lease_until < ?) ORDER BY id",
        (gid, due_at, now),
    )
    return [row[0] for row in found.rows]


def tiers(
    waiting_ids: Sequence[int], taken: Sequence[int], due_at: float, interval: float, per_message: int
) -> dict[float, list[int]]:
    """The waiting members not taken by when each is due, ids in order.

    Held in tiers of ``per_message`` by id: a message carries at most that many members (``MAX_TAKE``, or
    as many as the group's last full message did: what fits a destination's size limit), lowest ids first, and
    takes a slot ``interval`` after the last, so the k-th tier cannot go out before ``k`` intervals after
    ``due_at``. A member does not wait for its tier if it fits earlier: a message takes the lowest ids
    whatever their due times, a tier only says when the group is due again. The next refusal rewrites only
    the members due before its own slot (about one tier), not every member of a large group again, and
    tiers as large as the messages that go come due no sooner than they can go. The members taken are
    given back at ``due_at`` (``give_back``), so they are left out here."""
    left_out = set(taken)
    held: dict[float, list[int]] = {}
    for position, job_id in enumerate(waiting_ids):
        if job_id not in left_out:
            held.setdefault(due_at + position // per_message * interval, []).append(job_id)
    return held


def held(gid: str, due_at: float, now: float, size: int | None, sent: bool) -> Op[None]:
    """The group is held back until ``due_at`` (its next send slot): members that join meanwhile are due
    then (``HELD_DUE``), not one by one before it. Holds long past are removed on the way. After a message
    (``sent``) the hold keeps its ``size`` when it was full, else none (``TAKE_MARGIN``); a refused slot
    leaves the size as it was."""
    yield Stmt("DELETE FROM group_holds WHERE until < ?", (now - HOLD_KEPT,))
    yield Stmt(
        "INSERT INTO group_holds (gid, until, size) VALUES (?, ?, ?) ON CONFLICT (gid) DO UPDATE "
        f"SET until = excluded.until{', size = excluded.size' if sent else ''}",
        (gid, due_at, size),
    )


def hold(member_ids: Sequence[int], due_at: float) -> Op[None]:
    """Members not taken wait until ``due_at`` (an expired lease is kept: its takeover is still counted)."""
    yield Stmt(f"UPDATE jobs SET due_at = ? WHERE state = 'pending' AND id IN ({marks(member_ids)})",
               (due_at, *member_ids))  # fmt: skip


def while_owned(gid: str, owner: str, row_lock: str, changes: Sequence[Op[None]], unleased: bool) -> Op[bool]:
    """``changes`` if ``owner`` still holds the group lease (then given back when ``unleased``), else none."""
    if not (yield from owns(gid, owner, row_lock)):
        return False
    for change in changes:
        yield from change
    if unleased:
        yield from unlease(gid, owner)
    return True


def parts(ids: Sequence[int], rows: int | None, last: int | None = None) -> list[Sequence[int]]:
    """``ids`` in runs of at most ``rows`` (one run when None), ``last`` (if among them) in the last run."""
    ordered = [*(i for i in ids if i != last), *(i for i in ids if i == last)]
    size = rows or len(ordered) or 1
    return [ordered[start : start + size] for start in range(0, len(ordered), size)]


def owns(gid: str, owner: str, row_lock: str) -> Op[bool]:
    found = yield Stmt(f"SELECT owner FROM group_leases WHERE gid = ?{row_lock}", (gid,))
    return bool(found.rows) and found.rows[0][0] == owner


def end(
    member_ids: Sequence[int], state: str, result: str, batch: int | None, now: float, ref: str | None = None
) -> Op[None]:
    """End members as sent (``batch``: the message they went out in, ``ref``: its id at the notifier, a Slack
    ``ts`` or a Message-ID) or failed (``batch`` None: they went out in no message, and no ``ref`` is kept)."""
    if not member_ids:
        return
    yield Stmt(
        "UPDATE jobs SET state = ?, result = ?, finished_at = ?, attempts = attempts + 1, lease_owner = NULL, "
        "lease_until = NULL, updated_at = ?, batch = ?, ref = ? "
        f"WHERE state = 'pending' AND id IN ({marks(member_ids)})",
        (state, result, now, now, batch, None if batch is None else ref, *member_ids),
    )


def retry(member_ids: Sequence[int], result: str, now: float) -> Op[None]:
    """Count a failed attempt on every member (their due time is set by ``release``)."""
    yield Stmt(
        f"UPDATE jobs SET attempts = attempts + 1, result = ? WHERE state = 'pending' AND id IN ({marks(member_ids)})",
        (result, *member_ids),
    )


def extend(job_id: int, owner: str, until: float) -> Op[None]:
    """Renew the group lease along with the lease of the job that took the group."""
    yield Stmt(
        "UPDATE group_leases SET until = ? WHERE owner = ? AND gid = (SELECT gid FROM jobs WHERE id = ?)",
        (until, owner, job_id),
    )


def firing_batches(target: str, incident_ids: Sequence[int]) -> Op[dict[int, int]]:
    """The group message (batch) each of these alerts' firing message went out in, by incident."""
    found = yield Stmt(
        "SELECT incident_id, batch FROM jobs WHERE target = ? AND notify_kind = 'firing' AND batch IS NOT NULL "
        f"AND incident_id IN ({marks(incident_ids)})",
        (target, *incident_ids),
    )
    return {incident_id: batch for incident_id, batch in found.rows}


def batch_members(batch: int) -> Op[list[int]]:
    found = yield Stmt("SELECT id FROM jobs WHERE batch = ? ORDER BY id", (batch,))
    return [row[0] for row in found.rows]
