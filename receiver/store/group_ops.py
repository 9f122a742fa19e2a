"""The store operations a worker uses to send a group of deliveries as one message (SQL in ``grouping``).

A mixin of ``Store`` (which supplies ``_run`` and ``dialect``). Every operation checks the group lease, so
a worker that lost it (it stalled past its lease and another took the group over) changes nothing.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar

from opsloop.receiver.domain import PLAN, ActionRecord, Job
from opsloop.receiver.store import grouping, pacing, reads
from opsloop.receiver.store.driver import Op, Stmt, marks
from opsloop.receiver.store.schema import JOB_SELECT, Dialect, job_row

T = TypeVar("T")


class GroupOps(abc.ABC):
    dialect: Dialect
    part_rows: int | None = None
    """Members one write of a group changes at most; a longer change (ending a message of a thousand
    members, holding back a group) is written in parts, each its own operation that checks the group
    lease first. None: in one operation. A store whose webhooks wait behind these writes (SQLite's one
    writer) sets a bound, so no webhook waits for more than one part."""

    @abc.abstractmethod
    async def _run(self, op: Op[T]) -> T: ...

    async def _read(self, op: Op[T]) -> T:
        """Run an operation that only reads. A store whose readers need not wait for its writer (SQLite in
        WAL mode) runs it beside the writer, so large reads never delay the commits of webhooks."""
        return await self._run(op)

    async def take_group(self, job: Job, owner: str, until: float, now: float) -> list[Job] | None:
        """``job`` and the other pending members of its group, leased together until ``until`` (renewed by
        ``extend_lease`` of ``job``); None when another worker holds the group (``job`` is then released).

        Only the lease is written; the members' rows are read after its commit (``_read``): while the
        lease is held no other worker takes, sends or replaces a member, so they are read as taken."""
        ids = await self._run(self._take_group(job, owner, until, now))
        if ids is None:
            return None
        return await self._read(self._jobs_by_id(ids))

    @staticmethod
    def _take_group(job: Job, owner: str, until: float, now: float) -> Op[list[int] | None]:
        ids = yield from grouping.take(job, owner, until, now)
        if ids is None:  # another worker holds the group: this member waits for it (or for its takeover)
            yield Stmt(
                "UPDATE jobs SET due_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?",
                (until, job.id, owner),
            )
        return ids

    @staticmethod
    def _jobs_by_id(ids: Sequence[int]) -> Op[list[Job]]:
        """These jobs in this order (one gone since is left out)."""
        found = yield Stmt(f"{JOB_SELECT} WHERE j.id IN ({marks(ids)})", ids)
        jobs = {j.id: j for j in map(job_row, found.rows)}
        return [jobs[i] for i in ids if i in jobs]

    async def firing_pending(self, target: str, member_ids: Sequence[int]) -> bool:
        return await self._run(grouping.firing_pending(target, member_ids))

    async def group_slot(
        self, job: Job, owner: str, member_ids: Sequence[int], key: str, interval: float, now: float, urgent: bool
    ) -> float | None:
        """The group's send slot (one member holds it for all): None to send now, else the group is given
        back until then.

        Refused, the group keeps its lease (as ``grouping.holding``) while it is held back until the slot
        (``_hold_back``)."""
        slot = await self._run(self._group_slot(job, owner, member_ids, key, interval, now, urgent))
        if slot is None:
            return None
        await self._hold_back(job, grouping.HOLDING + owner, member_ids, slot, interval, now)
        return slot

    def _group_slot(
        self, job: Job, owner: str, member_ids: Sequence[int], key: str, interval: float, now: float, urgent: bool
    ) -> Op[float | None]:
        holder = (yield from grouping.held_slot(member_ids)) or job.id
        slot = yield from pacing.take_slot(holder, key, interval, now, self.dialect.row_lock, urgent)
        if slot is not None:
            yield from grouping.holding(job.group, owner, slot)
        return slot

    async def _hold_back(
        self, job: Job, owner: str, taken: Sequence[int], due_at: float, interval: float, now: float,
        done: Sequence[int] = (), ended: Sequence[tuple[int, Op[None]]] = (),
    ) -> bool:  # fmt: skip
        """Hold ``job``'s group back until its send slot ``due_at``, then give the group back; first ``ended``,
        which ends the members ``done`` (a message about them just went out). The members taken are due then,
        and so are the others that wait with them (``grouping.waiting``, read with ``_read``), in ``tiers``;
        members that join meanwhile are due then too (``grouping.held``). A message that was full (members
        taken are left over) says how many go in one: the tiers, and the group's next take
        (``grouping.TAKE_MARGIN``), are that large, else ``MAX_TAKE``. In parts of ``part_rows``; False when
        the lease was lost."""
        waiting = await self._read(grouping.waiting(job.group, due_at, now))
        ending = set(done)  # ended before the members are held: they take no place in the next message
        size = len(ending) if ending and taken else None
        changes = list(ended)
        for tier_due, held in grouping.tiers(
            [i for i in waiting if i not in ending], taken, due_at, interval, size or grouping.MAX_TAKE
        ).items():
            changes += self._in_parts(held, None, partial(grouping.hold, due_at=tier_due))
        changes += self._in_parts(taken, job.id, lambda part: grouping.give_back(part, due_at, now))
        changes.append((1, grouping.held(job.group, due_at, now, size, sent=bool(ending))))
        return await self._while_owned(job.group, owner, changes, unleased=True)

    def _in_parts(
        self, ids: Sequence[int], last: int | None, change: Callable[[Sequence[int]], Op[None]]
    ) -> list[tuple[int, Op[None]]]:
        """``change`` of ``ids`` in runs of at most ``part_rows`` (``last`` in the last run), with their sizes."""
        return [(len(part), change(part)) for part in grouping.parts(ids, self.part_rows, last)]

    async def _while_owned(self, gid: str, owner: str, changes: Sequence[tuple[int, Op[None]]], unleased: bool) -> bool:
        """Run ``changes`` of a leased group, at most ``part_rows`` members in each operation, each only while
        ``owner`` still holds the lease (the last one gives it back when ``unleased``). False when it was lost:
        the parts after that are not written.

        A crash between parts leaves the group leased with the parts before written; the lease then expires
        (or a restart ends it) and the group is taken over as after any crash of a worker that held it."""
        batches: list[list[Op[None]]] = [[]]
        size = 0
        for rows, change in changes:
            if batches[-1] and self.part_rows is not None and size + rows > self.part_rows:
                batches.append([])
                size = 0
            batches[-1].append(change)
            size += rows
        for n, batch in enumerate(batches, 1):
            owned = grouping.while_owned(gid, owner, self.dialect.row_lock, batch, unleased and n == len(batches))
            if not await self._run(owned):
                return False
        return True

    async def release_group(
        self, job: Job, owner: str, member_ids: Sequence[int], due_at: float, now: float, failed: str = ""
    ) -> None:
        """Give the group back until ``due_at``; ``failed``: the attempt failed with this error (counted)."""
        await self._run(self._release_group(job, owner, member_ids, due_at, now, failed))

    def _release_group(
        self, job: Job, owner: str, member_ids: Sequence[int], due_at: float, now: float, failed: str
    ) -> Op[None]:
        if not (yield from grouping.owns(job.group, owner, self.dialect.row_lock)):
            return
        if failed:
            yield from grouping.retry(member_ids, failed, now)
        yield from grouping.release(job.group, owner, member_ids, due_at, now)

    async def end_group(
        self, job: Job, owner: str, done: Sequence[int], state: str, result: str, rest: Sequence[int], now: float,
        ref: str | None = None, next_slot: tuple[float, float] | None = None,
    ) -> bool:  # fmt: skip
        """End the members in ``done`` (sent in the message of ``job``, whose id at the notifier is ``ref``, or
        failed); ``rest`` is due now as the group's next message, or, with ``next_slot`` (the time and
        interval of the notifier's next send slot, when the message took the last one), the group is held
        back until then (``_hold_back``): no message could go out before it, and a member due earlier would
        only take the group to be refused its slot. False when the group lease was lost.

        Written in parts of ``part_rows``, ``job`` in the last of ``done``: a crash in between leaves ``job``
        leased, so the takeover's message about the members not yet ended says it may be a repeat."""
        ended = self._ended(job, done, state, result, now, ref)
        if next_slot is not None:
            slot, interval = next_slot
            return await self._hold_back(job, owner, rest, slot, interval, now, done, ended)
        changes = [*ended, *self._in_parts(rest, job.id, lambda part: grouping.give_back(part, now, now))]
        return await self._while_owned(job.group, owner, changes, unleased=True)

    async def record_group(
        self, job: Job, owner: str, done: Sequence[int], state: str, result: str, now: float, ref: str | None = None
    ) -> bool:
        """As ``end_group`` without giving the group back: the worker goes on with its other members."""
        return await self._while_owned(job.group, owner, self._ended(job, done, state, result, now, ref), False)

    def _ended(
        self, job: Job, done: Sequence[int], state: str, result: str, now: float, ref: str | None
    ) -> list[tuple[int, Op[None]]]:
        batch = job.id if state == "sent" else None
        return self._in_parts(done, job.id, lambda part: grouping.end(part, state, result, batch, now, ref))

    async def plan_runs_of(self, incident_ids: Sequence[int]) -> tuple[list[Job], list[ActionRecord]]:
        """The plan runs of these alerts and their actions: what a group message says about automation."""
        return await self._read(self._plan_runs_of(incident_ids))

    @staticmethod
    def _plan_runs_of(incident_ids: Sequence[int]) -> Op[tuple[list[Job], list[ActionRecord]]]:
        if not incident_ids:
            return [], []
        found = yield Stmt(
            f"{JOB_SELECT} WHERE j.kind = ? AND j.incident_id IN ({marks(incident_ids)}) ORDER BY j.id",
            (PLAN, *incident_ids),
        )
        runs = [job_row(row) for row in found.rows]
        actions = yield from reads.actions_of([j.id for j in runs])
        return runs, actions

    async def firing_batches(self, target: str, incident_ids: Sequence[int]) -> dict[int, int]:
        """By incident, the group message (the id of the job that carried it) its firing message was in."""
        return await self._run(grouping.firing_batches(target, incident_ids))

    async def batch_jobs(self, batch: int) -> list[Job]:
        """The deliveries sent in one group message, with their alerts as they are now."""
        return await self._run(self._batch_jobs(batch))

    @staticmethod
    def _batch_jobs(batch: int) -> Op[list[Job]]:
        ids = yield from grouping.batch_members(batch)
        if not ids:
            return []
        found = yield Stmt(f"{JOB_SELECT} WHERE j.id IN ({marks(ids)}) ORDER BY j.id", ids)
        return [job_row(row) for row in found.rows]
