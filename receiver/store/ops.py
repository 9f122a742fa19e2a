"""The durable store: incidents, work items ("jobs"), action history and automation pauses.

Every operation is written once, as a generator that yields SQL statements and receives their results
(``Op``). A backend only drives generators inside one transaction: SQLite runs a whole operation in its
writer thread in one hop, PostgreSQL awaits each statement. So both backends share every query and
every decision, and differ only in connections, locking clauses and column types.

Idempotency lives in unique keys: an incident is (fingerprint, startsAt) and a job's ``key`` is
(kind, plan or notifier, fingerprint, startsAt, status), so delivering a webhook twice inserts nothing.
Workers lease jobs (``lease_owner``/``lease_until``); a lease that expires without release is taken
over and counted in ``interrupted``.

This module is longer than 400 lines because it is the ``Store`` interface, one method per operation;
operations of their own concern keep their SQL elsewhere (``limits``, ``pacing``, ``reads``, ``steering``,
``moves``, ``grouping``) and appear here as one-line methods.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TypeVar

from opsloop.receiver.domain import (
    ANNOUNCED,
    DELIVERY,
    PENDING,
    PLAN,
    RECOVERED,
    REPLACED,
    ActionRecord,
    Gate,
    IncidentView,
    Job,
    Kind,
    Outcome,
    RoutedAlert,
    concurrency_why,
    delivery_key,
    group_id,
    plan_key,
)
from opsloop.receiver.store import grouping, pacing, reads
from opsloop.receiver.store.driver import Op, Stmt, marks
from opsloop.receiver.store.group_ops import GroupOps
from opsloop.receiver.store.limits import limits, wake_waiting
from opsloop.receiver.store.moves import MoveJournal
from opsloop.receiver.store.reads import IncidentFilter, StatsFacts
from opsloop.receiver.store.schema import (
    INSERT_HELD_JOB,
    INSERT_JOB,
    JOB_SELECT,
    UPSERT_INCIDENT,
    URGENCY_PARAMS,
    Dialect,
    job_row,
    json_text,
    schema_statements,
)
from opsloop.receiver.store.steering import SteeringOps

T = TypeVar("T")

# Stable key for PostgreSQL's advisory lock around plan gating (caps, cooldown, circuit breaker).
GATE_LOCK = 0x6F70736C
URGENCIES = range(4)
"""The values of a job's ``urgency`` (see ``schema.URGENCY``), most urgent first."""
CONCURRENCY_RECHECK = 5.0
"""Seconds a run waiting for a free place of its plan (max_concurrent) waits before it asks again."""


class Store(SteeringOps, GroupOps, MoveJournal, abc.ABC):
    """Every store operation; a backend supplies ``dialect``, connections and ``_run``."""

    dialect: Dialect

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def _run(self, op: Op[T]) -> T:
        """Drive ``op`` inside one transaction; raise StoreUnavailable when the store cannot be used."""

    def schema(self) -> list[str]:
        return schema_statements(self.dialect)

    async def ping(self) -> None:
        await self._run(self._ping())

    @staticmethod
    def _ping() -> Op[None]:
        yield Stmt("SELECT 1")

    # -- webhooks -------------------------------------------------------------------------------

    async def ingest(self, alerts: Sequence[RoutedAlert], external_url: str, truncated: int, now: float) -> int:
        """Record a webhook's alerts and the work they cause, in one transaction; returns the alert count."""
        # One lock order for replicas.
        ordered = sorted(alerts, key=lambda routed: (routed.alert.fingerprint, routed.alert.starts_at))
        return await self._run(self._ingest(ordered, external_url, truncated, now))

    def _ingest(self, alerts: Sequence[RoutedAlert], external_url: str, truncated: int, now: float) -> Op[int]:
        for routed in alerts:
            alert = routed.alert
            result = yield Stmt(
                UPSERT_INCIDENT,
                (alert.fingerprint, alert.starts_at, alert.status, json_text(alert.labels),
                 json_text(alert.annotations), alert.ends_at, alert.generator_url, external_url, truncated,
                 now, now),
            )  # fmt: skip
            incident_id, received_at, stored_status = result.rows[0]
            is_new = received_at == now
            if alert.status == "firing":
                if stored_status == "firing":  # a late retry of a firing webhook never reopens
                    yield from self._firing_work(incident_id, routed, now)
            else:
                yield from self._resolved_work(incident_id, routed, is_new, now)
        return len(alerts)

    def _firing_work(self, incident_id: int, routed: RoutedAlert, now: float) -> Op[None]:
        alert = routed.alert
        if routed.group_key:  # messages a plan queues later join the alert's group too
            for notifier, wait in routed.group_windows.items():
                yield from grouping.remember(incident_id, notifier, routed.group_key, wait)
        for plan, values in routed.plans:
            key = plan_key(plan, alert.fingerprint, alert.starts_at)
            yield from self._insert_job(key, PLAN, incident_id, plan, None, "", values, now, False, False)
        if not routed.plans or routed.notify_firing:
            for notifier in routed.notifiers:
                yield from self._insert_delivery(incident_id, routed, notifier, "firing", routed.note, now)

    def _resolved_work(self, incident_id: int, routed: RoutedAlert, is_new: bool, now: float) -> Op[None]:
        alert = routed.alert
        yield Stmt(
            "UPDATE incidents SET status = 'resolved', ends_at = ?, updated_at = ? WHERE id = ? AND status = 'firing'",
            (alert.ends_at, now, incident_id),
        )
        # A resolved alert tells every notifier that heard it was firing (or was asked to escalate it).
        told = yield Stmt(
            "SELECT DISTINCT target FROM jobs WHERE incident_id = ? AND kind = ? "
            f"AND notify_kind IN ({marks(ANNOUNCED)}) ORDER BY target",
            (incident_id, DELIVERY, *ANNOUNCED),
        )
        notifiers = [row[0] for row in told.rows]
        if is_new and not routed.plans:
            notifiers += routed.notifiers
        # A firing message still waiting (for its send slot, or a retry) would arrive stale: replace it.
        stale = yield Stmt(
            "SELECT id FROM jobs WHERE incident_id = ? AND kind = ? AND notify_kind = 'firing' "
            f"AND state = 'pending' AND lease_owner IS NULL AND NOT {grouping.IN_SENDING_GROUP}",
            (incident_id, DELIVERY, now),
        )
        stale_ids = [row[0] for row in stale.rows]
        if stale_ids:
            yield Stmt(
                "UPDATE jobs SET state = ?, result = ?, finished_at = ?, updated_at = ? "
                f"WHERE id IN ({marks(stale_ids)})",
                (REPLACED, "the alert resolved before this message went out", now, now, *stale_ids),
            )
            yield from pacing.release_holds(stale_ids, self.dialect.row_lock)
        # A plan waiting for its next stage looks again now: a resolved alert counts as recovered. ("+due_at":
        # read the alert's jobs by incident, never every pending job due later, such as a paced backlog.)
        yield Stmt(
            "UPDATE jobs SET due_at = ? WHERE incident_id = ? AND kind = ? AND state = 'pending' AND +due_at > ?",
            (now, incident_id, PLAN, now),
        )
        for notifier in notifiers:
            yield from self._insert_delivery(incident_id, routed, notifier, "resolved", "", now)

    def _insert_delivery(
        self, incident_id: int, routed: RoutedAlert, notifier: str, kind: Kind, note: str, now: float
    ) -> Op[int | None]:
        """A delivery of the webhook; with a group key it joins its group and waits ``group_window``."""
        alert = routed.alert
        key = delivery_key(notifier, alert.fingerprint, alert.starts_at, kind)
        if not routed.group_key or routed.group_windows.get(notifier) is None:
            return (yield from self._insert_job(key, DELIVERY, incident_id, notifier, kind, note, {}, now))
        wait = routed.group_wait(notifier)  # None for a page: it never waits, not even for its group's hold
        gid = group_id(notifier, kind, routed.group_key)
        return (yield from self._insert_job(
            key, DELIVERY, incident_id, notifier, kind, note, {}, now, due_at=now if wait is None else now + wait,
            gid=gid, held=wait is not None,
        ))  # fmt: skip

    @staticmethod
    def _insert_job(
        key: str, kind: str, incident_id: int, target: str, notify_kind: Kind | None, note: str,
        values: Mapping[str, str], now: float, manual: bool = False, dry_run: bool = False,
        due_at: float | None = None, gid: str | None = None, held: bool = False,
    ) -> Op[int | None]:  # fmt: skip
        """The new job's id, or None when a job with ``key`` exists already. A delivery of a group names its
        group (``gid``) in the row it is inserted with: one row version, not an insert and then an update;
        ``held``: due no earlier than the group is held back to."""
        due = now if due_at is None else due_at
        due_params = (gid, due, due) if held else (due,)
        result = yield Stmt(
            INSERT_HELD_JOB if held else INSERT_JOB,
            (key, kind, incident_id, target, notify_kind, note, json_text(values), *due_params, int(manual),
             int(dry_run), now, now, gid, notify_kind, *URGENCY_PARAMS, incident_id),
        )  # fmt: skip
        return result.rows[0][0] if result.rows else None

    # -- workers --------------------------------------------------------------------------------

    async def claim(self, owner: str, limit: int, lease: float, now: float) -> list[Job]:
        """Lease up to ``limit`` due jobs; an expired lease of another owner counts as an interruption."""
        return await self._run(self._claim(owner, limit, lease, now))

    def _claim(self, owner: str, limit: int, lease: float, now: float) -> Op[list[Job]]:
        # Most urgent first, one index range per urgency, so a claim reads about the rows it takes whatever
        # the backlog. One member per group, whose group the claim leases: its step takes the rest of the group.
        rows: list[tuple[int, str | None]] = []
        for urgency in URGENCIES:
            result = yield Stmt(
                "SELECT id, gid FROM jobs WHERE state = 'pending' AND urgency = ? AND due_at <= ? "
                f"AND (lease_until IS NULL OR lease_until < ?) AND NOT {grouping.IN_LEASED_GROUP} "
                "ORDER BY due_at, id LIMIT ?" + self.dialect.skip_locked,
                (urgency, now, now, now, limit - len(rows)),
            )
            rows += result.rows
            if len(rows) >= limit:
                break
        heads: dict[int, str | None] = {}
        groups: list[str] = []
        for job_id, gid in rows:
            if gid is None:
                heads[job_id] = None
            elif gid not in groups:
                heads[job_id] = gid
                groups.append(gid)
        leased = yield from grouping.lease(groups, owner, now + lease, now, self.dialect.skip_locked)
        ids = [job_id for job_id, gid in heads.items() if gid is None or gid in leased]
        if not ids:
            return []
        yield Stmt(
            "UPDATE jobs SET interrupted = interrupted + (CASE WHEN lease_owner IS NULL THEN 0 ELSE 1 END), "
            f"lease_owner = ?, lease_until = ?, updated_at = ? WHERE id IN ({marks(ids)})",
            (owner, now + lease, now, *ids),
        )
        result = yield Stmt(f"{JOB_SELECT} WHERE j.id IN ({marks(ids)}) ORDER BY j.due_at, j.id", ids)
        return [job_row(row) for row in result.rows]

    async def take_slot(
        self, job_id: int, owner: str, key: str, interval: float, now: float, urgent: bool = False
    ) -> float | None:
        """A send slot of ``key`` for a delivery: None to send now, else its slot, until which the job is
        released (in the same transaction)."""
        return await self._run(self._take_slot(job_id, owner, key, interval, now, urgent))

    def _take_slot(
        self, job_id: int, owner: str, key: str, interval: float, now: float, urgent: bool
    ) -> Op[float | None]:
        slot = yield from pacing.take_slot(job_id, key, interval, now, self.dialect.row_lock, urgent)
        if slot is not None:
            yield from self._reschedule(job_id, owner, slot, now, None, None, False, "")
        return slot

    async def push_slot(self, key: str, until: float) -> None:
        await self._run(pacing.push_slot(key, until, self.dialect.row_lock))

    async def message_ref(self, key: str) -> str | None:
        return await self._run(pacing.message_ref(key))

    async def save_message_ref(self, key: str, ref: str, now: float) -> None:
        await self._run(pacing.save_message_ref(key, ref, now))

    async def lease_owners(self, now: float) -> list[str]:
        return await self._run(reads.lease_owners(now))

    async def expire_leases(self, owners: Sequence[str], now: float) -> int:
        """End the leases of owners known to be dead: their work is due again at once, as interrupted."""
        return await self._run(self._expire_leases(owners, now))

    @staticmethod
    def _expire_leases(owners: Sequence[str], now: float) -> Op[int]:
        if not owners:
            return 0
        done = yield Stmt(
            f"UPDATE jobs SET lease_until = ? WHERE state = 'pending' AND lease_owner IN ({marks(owners)})",
            (now - 1, *owners),
        )
        yield Stmt(f"UPDATE group_leases SET until = ? WHERE owner IN ({marks(owners)})", (now - 1, *owners))
        return done.rowcount

    async def extend_lease(self, job_id: int, owner: str, until: float) -> bool:
        return await self._run(self._extend_lease(job_id, owner, until))

    @staticmethod
    def _extend_lease(job_id: int, owner: str, until: float) -> Op[bool]:
        result = yield Stmt(
            "UPDATE jobs SET lease_until = ? WHERE id = ? AND lease_owner = ? AND state = 'pending'",
            (until, job_id, owner),
        )
        if result.rowcount == 1:
            yield from grouping.extend(job_id, owner, until)
        return result.rowcount == 1

    async def reschedule(
        self, job_id: int, owner: str, *, due_at: float, now: float, stage: int | None = None,
        phase: str | None = None, attempted: bool = False, result: str = "",
    ) -> bool:  # fmt: skip
        """Release a job until ``due_at``, optionally moving it to another stage or phase."""
        return await self._run(self._reschedule(job_id, owner, due_at, now, stage, phase, attempted, result))

    @staticmethod
    def _reschedule(
        job_id: int, owner: str, due_at: float, now: float, stage: int | None, phase: str | None,
        attempted: bool, result: str,
    ) -> Op[bool]:  # fmt: skip
        done = yield Stmt(
            "UPDATE jobs SET due_at = ?, stage = COALESCE(?, stage), phase = COALESCE(?, phase), "
            "attempts = attempts + ?, result = ?, lease_owner = NULL, lease_until = NULL, updated_at = ? "
            "WHERE id = ? AND lease_owner = ? AND state = 'pending'",
            (due_at, stage, phase, int(attempted), result, now, job_id, owner),
        )
        return done.rowcount == 1

    async def finish(
        self, job: Job, owner: str, now: float, outcome: Callable[[str], Outcome], attempted: bool = False
    ) -> Outcome | None:
        """End a job with ``outcome(incident status)`` (read under lock) and queue its notifications.

        Returns None when the lease was lost (another worker owns the job now).
        """
        return await self._run(self._finish(job, owner, now, outcome, attempted))

    def _finish(
        self, job: Job, owner: str, now: float, outcome: Callable[[str], Outcome], attempted: bool
    ) -> Op[Outcome | None]:
        status = yield from self._incident_status(job.incident.id)
        decided = outcome(status)
        ended = yield from self._end(job, owner, decided, now, attempted)
        return decided if ended else None

    def _end(self, job: Job, owner: str, decided: Outcome, now: float, attempted: bool) -> Op[bool]:
        done = yield Stmt(
            "UPDATE jobs SET state = ?, result = ?, finished_at = ?, attempts = attempts + ?, "
            "lease_owner = NULL, lease_until = NULL, updated_at = ? "
            "WHERE id = ? AND lease_owner = ? AND state = 'pending'",
            (decided.state, decided.result, now, int(attempted), now, job.id, owner),
        )
        if done.rowcount != 1:
            return False
        if job.kind == PLAN:
            yield from wake_waiting(job.target, now)
        for d in decided.deliveries:
            placed = yield from grouping.place(job.incident.id, d.notifier, d.kind, d.note, now)
            if placed.folded:  # the alert's firing message, still to be sent, says what the plan did
                continue
            yield from self._insert_job(
                d.key, DELIVERY, job.incident.id, d.notifier, d.kind, d.note, {}, now, due_at=placed.due_at,
                gid=placed.gid, held=placed.gid is not None,
            )  # fmt: skip
        return True

    def _incident_status(self, incident_id: int) -> Op[str]:
        result = yield Stmt(f"SELECT status FROM incidents WHERE id = ?{self.dialect.row_lock}", (incident_id,))
        return result.rows[0][0]

    async def gate(
        self, job: Job, owner: str, gate: Gate, now: float, blocked: Callable[[str, str | None], Outcome],
        resolved: Callable[[str], Outcome] = lambda why: Outcome(RECOVERED, why),
    ) -> Outcome | None:  # fmt: skip
        """Check pauses, cooldown, caps, the storm guard and the circuit breaker before an attempt, atomically.

        Returns None when the attempt may go ahead (the run is then counted against the caps), else the
        outcome that ended the job: recovered when the alert already resolved (``resolved(why)`` once
        a stage ran), else ``blocked(reason, guard)``, ``guard`` naming the guard that paused automation
        just now (else None). A first attempt of a plan already at ``max_concurrent`` runs is put back to
        wait: the outcome returned then is PENDING and the job is released, not ended.
        """
        return await self._run(self._gate(job, owner, gate, now, blocked, resolved))

    def _gate(
        self, job: Job, owner: str, gate: Gate, now: float, blocked: Callable[[str, str | None], Outcome],
        resolved: Callable[[str], Outcome],
    ) -> Op[Outcome | None]:  # fmt: skip
        if self.dialect.gate_lock:
            yield Stmt(self.dialect.gate_lock, (GATE_LOCK,))
        status = yield from self._incident_status(job.incident.id)
        if status == "resolved":
            # Before a later stage, earlier stages ran: the alert resolved after them, not before the run.
            if job.stage:
                decided = resolved(f"the alert resolved after stage {job.stage}")
            else:
                decided = Outcome(RECOVERED, "the alert resolved before the attempt")
            yield from self._end(job, owner, decided, now, attempted=False)
            return decided
        reason, guard = ("", None) if job.manual else (yield from limits(job, gate, now))
        if not reason and gate.first and gate.max_concurrent is not None:
            result = yield Stmt(
                "SELECT COUNT(*) FROM jobs WHERE kind = ? AND target = ? AND state = 'pending' "
                "AND run_started_at IS NOT NULL AND id <> ?",
                (PLAN, job.target, job.id),
            )
            running = result.rows[0][0]
            if running >= gate.max_concurrent:
                why = concurrency_why(running)
                yield from self._reschedule(job.id, owner, now + CONCURRENCY_RECHECK, now, None, None, False, why)
                return Outcome(PENDING, why)
        if not reason:
            yield Stmt(
                "UPDATE jobs SET run_started_at = COALESCE(run_started_at, ?) WHERE id = ? AND lease_owner = ?",
                (now, job.id, owner),
            )
            return None
        decided = blocked(reason, guard)
        yield from self._end(job, owner, decided, now, attempted=False)
        return decided

    async def begin_action(
        self, job: Job, owner: str, position: int, action_type: str, dry_run: bool, now: float, lease_until: float
    ) -> int | None:
        """Record an action as started (before it runs) and extend the lease; None if the lease is lost."""
        return await self._run(self._begin_action(job, owner, position, action_type, dry_run, now, lease_until))

    def _begin_action(
        self, job: Job, owner: str, position: int, action_type: str, dry_run: bool, now: float, lease_until: float
    ) -> Op[int | None]:
        owned = yield from self._extend_lease(job.id, owner, lease_until)
        if not owned:
            return None
        result = yield Stmt(
            "INSERT INTO actions (job_id, plan, stage, position, type, state, detail, dry_run, started_at) "
            "VALUES (?, ?, ?, ?, ?, 'started', '', ?, ?) RETURNING id",
            (job.id, job.target, job.stage, position, action_type, int(dry_run), now),
        )
        return result.rows[0][0]

    async def end_action(self, action_id: int, ok: bool, detail: str, now: float) -> None:
        await self._run(self._end_action(action_id, ok, detail, now))

    @staticmethod
    def _end_action(action_id: int, ok: bool, detail: str, now: float) -> Op[None]:
        yield Stmt(
            "UPDATE actions SET state = ?, detail = ?, finished_at = ? WHERE id = ?",
            ("ok" if ok else "failed", detail, now, action_id),
        )

    async def interrupt_actions(self, job_id: int, stage: int, now: float) -> int:
        """Mark actions left 'started' by a crashed worker; they are never run again for this stage."""
        return await self._run(self._interrupt_actions(job_id, stage, now))

    @staticmethod
    def _interrupt_actions(job_id: int, stage: int, now: float) -> Op[int]:
        yield Stmt(
            "UPDATE actions SET state = 'interrupted', detail = 'the worker stopped while it ran', "
            "finished_at = ? WHERE job_id = ? AND stage = ? AND state = 'started'",
            (now, job_id, stage),
        )
        result = yield Stmt("SELECT COUNT(*) FROM actions WHERE job_id = ? AND stage = ?", (job_id, stage))
        return result.rows[0][0]

    async def actions_of(self, job_id: int) -> list[ActionRecord]:
        return await self._run(reads.actions_of((job_id,)))

    # -- admin ----------------------------------------------------------------------------------

    async def pauses(self) -> dict[str, tuple[str, float]]:
        """Active pauses by scope ('*' for all plans): (reason, since)."""
        return await self._run(reads.pauses())

    async def incidents(
        self, limit: int = 50, status: str | None = None, incident_id: int | None = None, *,
        filter: IncidentFilter | None = None, offset: int = 0,
    ) -> list[IncidentView]:  # fmt: skip
        """Newest incidents first, each with its jobs (plan runs, deliveries), actions, approvals and events."""
        found = replace(filter or IncidentFilter(), **({"status": status} if status is not None else {}))
        return await self._run(reads.incidents(self.dialect, limit, found, incident_id, offset))

    async def count_incidents(self, filter: IncidentFilter) -> int:
        return await self._run(reads.count_incidents(self.dialect, filter))

    async def stats_facts(self, since: float, until: float) -> StatsFacts:
        """Incidents received in [since, until) (runs by hand left out), their plan runs and action counts."""
        return await self._run(reads.stats_facts(self.dialect, since, until))

    async def queue_stats(self, now: float) -> dict[str, tuple[int, float]]:
        """Per job kind: pending count and the age in seconds of the oldest job that is due."""
        return await self._run(reads.queue_stats(now))
