"""The durable store: incidents, work items ("jobs"), action history and automation pauses.

Every operation is written once, as a generator that yields SQL statements and receives their results
(``Op``). A backend only drives generators inside one transaction: SQLite runs a whole operation in its
writer thread in one hop, PostgreSQL awaits each statement. So both backends share every query and
every decision, and differ only in connections, locking clauses and column types.

Idempotency lives in unique keys: an incident is (fingerprint, startsAt) and a job's ``key`` is
(kind, plan or notifier, fingerprint, startsAt, status), so delivering a webhook twice inserts nothing.
Workers lease jobs (``lease_owner``/``lease_until``); a lease that expires without release is taken
over and counted in ``interrupted``.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

PLAN, DELIVERY = "plan", "delivery"
# Job states: pending until done; plans end recovered, escalated or skipped, deliveries sent or failed.
PENDING, RECOVERED, ESCALATED, SKIPPED, SENT, FAILED = (
    "pending",
    "recovered",
    "escalated",
    "skipped",
    "sent",
    "failed",
)
GLOBAL = "*"
# Stable key for PostgreSQL's advisory lock around plan gating (caps, cooldown, circuit breaker).
GATE_LOCK = 0x6F70736C


class StoreUnavailable(Exception):
    """The store cannot be reached or written right now; callers answer 503 or retry later."""


@dataclass(frozen=True)
class Stmt:
    sql: str
    params: Sequence[Any] = ()


@dataclass(frozen=True)
class Result:
    rows: list[tuple[Any, ...]]
    rowcount: int


Op = Generator[Stmt, Result, T]


@dataclass(frozen=True)
class Dialect:
    """What differs between backends in the SQL text itself."""

    id_column: str
    real: str
    skip_locked: str
    row_lock: str
    gate_lock: str | None


@dataclass(frozen=True)
class IncomingAlert:
    """One alert of a webhook together with what routing decided for it."""

    fingerprint: str
    starts_at: str
    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    ends_at: str | None
    generator_url: str
    plans: Sequence[tuple[str, Mapping[str, str]]] = ()
    notifiers: Sequence[str] = ()
    note: str = ""
    notify_firing: bool = True
    """Tell the routes' notifiers at once, even while a plan works on the alert."""


@dataclass(frozen=True)
class Incident:
    id: int
    fingerprint: str
    starts_at: str
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    ends_at: str | None
    generator_url: str
    external_url: str
    truncated_alerts: int
    received_at: float


@dataclass(frozen=True)
class Job:
    id: int
    key: str
    kind: str
    target: str
    notify_kind: str | None
    note: str
    values: dict[str, str]
    state: str
    stage: int
    phase: str
    due_at: float
    run_started_at: float | None
    attempts: int
    interrupted: int
    manual: bool
    dry_run: bool
    result: str
    created_at: float
    incident: Incident


@dataclass(frozen=True)
class ActionRecord:
    id: int
    job_id: int
    plan: str
    stage: int
    position: int
    type: str
    state: str
    detail: str
    dry_run: bool
    started_at: float
    finished_at: float | None


@dataclass(frozen=True)
class NewDelivery:
    """A notification to queue; ``key`` makes queuing it twice a no-op."""

    key: str
    notifier: str
    kind: str
    note: str = ""


@dataclass(frozen=True)
class Outcome:
    """How a job step ends: its new state and result text, plus notifications to queue atomically."""

    state: str
    result: str
    deliveries: Sequence[NewDelivery] = ()


@dataclass(frozen=True)
class Gate:
    """Plan limits checked atomically before an attempt."""

    cooldown: float
    per_hour: int | None
    per_day: int | None
    breaker_max: int
    breaker_window: float
    first: bool


@dataclass(frozen=True)
class IncidentView:
    incident: Incident
    jobs: list[Job] = field(default_factory=list)
    actions: list[ActionRecord] = field(default_factory=list)


def delivery_key(notifier: str, fingerprint: str, starts_at: str, kind: str, scope: str = "") -> str:
    return "|".join(filter(None, (DELIVERY, notifier, fingerprint, starts_at, kind, scope)))


def plan_key(plan: str, fingerprint: str, starts_at: str) -> str:
    return "|".join((PLAN, plan, fingerprint, starts_at, "firing"))


def _json(value: Mapping[str, str]) -> str:
    return json.dumps(dict(value), sort_keys=True, separators=(",", ":"))


SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    id {id_column},
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    status TEXT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    ends_at TEXT,
    generator_url TEXT NOT NULL,
    external_url TEXT NOT NULL,
    truncated_alerts INTEGER NOT NULL,
    received_at {real} NOT NULL,
    updated_at {real} NOT NULL,
    UNIQUE (fingerprint, starts_at)
);
CREATE TABLE IF NOT EXISTS jobs (
    id {id_column},
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    incident_id BIGINT NOT NULL REFERENCES incidents (id),
    target TEXT NOT NULL,
    notify_kind TEXT,
    note TEXT NOT NULL,
    vals TEXT NOT NULL,
    state TEXT NOT NULL,
    stage INTEGER NOT NULL DEFAULT 0,
    phase TEXT NOT NULL DEFAULT 'attempt',
    due_at {real} NOT NULL,
    run_started_at {real},
    finished_at {real},
    lease_owner TEXT,
    lease_until {real},
    attempts INTEGER NOT NULL DEFAULT 0,
    interrupted INTEGER NOT NULL DEFAULT 0,
    manual INTEGER NOT NULL DEFAULT 0,
    dry_run INTEGER NOT NULL DEFAULT 0,
    result TEXT NOT NULL DEFAULT '',
    created_at {real} NOT NULL,
    updated_at {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (state, due_at);
CREATE INDEX IF NOT EXISTS jobs_incident ON jobs (incident_id);
CREATE INDEX IF NOT EXISTS jobs_plan_runs ON jobs (target, run_started_at);
CREATE TABLE IF NOT EXISTS actions (
    id {id_column},
    job_id BIGINT NOT NULL REFERENCES jobs (id),
    plan TEXT NOT NULL,
    stage INTEGER NOT NULL,
    position INTEGER NOT NULL,
    type TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    started_at {real} NOT NULL,
    finished_at {real}
);
CREATE INDEX IF NOT EXISTS actions_job ON actions (job_id);
CREATE INDEX IF NOT EXISTS actions_started ON actions (started_at);
CREATE TABLE IF NOT EXISTS pauses (
    scope TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    at {real} NOT NULL
);
"""

_INCIDENT_COLUMNS = (
    "i.id, i.fingerprint, i.starts_at, i.status, i.labels, i.annotations, i.ends_at, i.generator_url, "
    "i.external_url, i.truncated_alerts, i.received_at"
)
_JOB_COLUMNS = (
    "j.id, j.key, j.kind, j.target, j.notify_kind, j.note, j.vals, j.state, j.stage, j.phase, j.due_at, "
    "j.run_started_at, j.attempts, j.interrupted, j.manual, j.dry_run, j.result, j.created_at"
)
_JOB_SELECT = f"SELECT {_JOB_COLUMNS}, {_INCIDENT_COLUMNS} FROM jobs j JOIN incidents i ON i.id = j.incident_id"
_ACTION_COLUMNS = "id, job_id, plan, stage, position, type, state, detail, dry_run, started_at, finished_at"
_UPSERT_INCIDENT = """
INSERT INTO incidents (fingerprint, starts_at, status, labels, annotations, ends_at, generator_url,
                       external_url, truncated_alerts, received_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (fingerprint, starts_at) DO UPDATE SET
    annotations = excluded.annotations, generator_url = excluded.generator_url,
    external_url = excluded.external_url, truncated_alerts = excluded.truncated_alerts,
    updated_at = excluded.updated_at
RETURNING id, received_at, status
"""
_INSERT_JOB = """
INSERT INTO jobs (key, kind, incident_id, target, notify_kind, note, vals, state, due_at, manual, dry_run,
                  created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)
ON CONFLICT (key) DO NOTHING
"""
# A resolved alert tells every notifier that heard it was firing (or was asked to escalate it).
_COPY_RESOLVED = """
INSERT INTO jobs (key, kind, incident_id, target, notify_kind, note, vals, state, due_at, created_at, updated_at)
SELECT DISTINCT 'delivery|' || target || '|' || ? || '|' || ? || '|resolved', 'delivery', incident_id,
       target, 'resolved', '', '{}', 'pending', ?, ?, ?
FROM jobs WHERE incident_id = ? AND kind = 'delivery' AND notify_kind IN ('firing', 'escalation')
ON CONFLICT (key) DO NOTHING
"""


def _incident(row: Sequence[Any]) -> Incident:
    return Incident(
        id=row[0], fingerprint=row[1], starts_at=row[2], status=row[3], labels=json.loads(row[4]),
        annotations=json.loads(row[5]), ends_at=row[6], generator_url=row[7], external_url=row[8],
        truncated_alerts=row[9], received_at=row[10],
    )  # fmt: skip


def _job(row: Sequence[Any]) -> Job:
    return Job(
        id=row[0], key=row[1], kind=row[2], target=row[3], notify_kind=row[4], note=row[5],
        values=json.loads(row[6]), state=row[7], stage=row[8], phase=row[9], due_at=row[10],
        run_started_at=row[11], attempts=row[12], interrupted=row[13], manual=bool(row[14]),
        dry_run=bool(row[15]), result=row[16], created_at=row[17], incident=_incident(row[18:]),
    )  # fmt: skip


def _action(row: Sequence[Any]) -> ActionRecord:
    return ActionRecord(
        id=row[0], job_id=row[1], plan=row[2], stage=row[3], position=row[4], type=row[5], state=row[6],
        detail=row[7], dry_run=bool(row[8]), started_at=row[9], finished_at=row[10],
    )  # fmt: skip


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def drive(op: Op[T], execute: Callable[[Stmt], Result]) -> T:
    """Run an operation's statements synchronously (SQLite's writer thread)."""
    try:
        stmt = next(op)
        while True:
            stmt = op.send(execute(stmt))
    except StopIteration as done:
        return done.value


async def drive_async(op: Op[T], execute: Callable[[Stmt], Awaitable[Result]]) -> T:
    """Run an operation's statements one await at a time (PostgreSQL)."""
    try:
        stmt = next(op)
        while True:
            stmt = op.send(await execute(stmt))
    except StopIteration as done:
        return done.value


class Store(abc.ABC):
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
        text = SCHEMA.format(id_column=self.dialect.id_column, real=self.dialect.real)
        return [s.strip() for s in text.split(";") if s.strip()]

    async def ping(self) -> None:
        await self._run(self._ping())

    @staticmethod
    def _ping() -> Op[None]:
        yield Stmt("SELECT 1")

    # -- webhooks -------------------------------------------------------------------------------

    async def ingest(self, alerts: Sequence[IncomingAlert], external_url: str, truncated: int, now: float) -> int:
        """Record a webhook's alerts and the work they cause, in one transaction; returns the alert count."""
        ordered = sorted(alerts, key=lambda a: (a.fingerprint, a.starts_at))  # one lock order for replicas
        return await self._run(self._ingest(ordered, external_url, truncated, now))

    def _ingest(self, alerts: Sequence[IncomingAlert], external_url: str, truncated: int, now: float) -> Op[int]:
        for alert in alerts:
            result = yield Stmt(
                _UPSERT_INCIDENT,
                (alert.fingerprint, alert.starts_at, alert.status, _json(alert.labels),
                 _json(alert.annotations), alert.ends_at, alert.generator_url, external_url, truncated,
                 now, now),
            )  # fmt: skip
            incident_id, received_at, stored_status = result.rows[0]
            is_new = received_at == now
            if alert.status == "firing":
                if stored_status == "firing":  # a late retry of a firing webhook never reopens
                    yield from self._firing_work(incident_id, alert, now)
            else:
                yield from self._resolved_work(incident_id, alert, is_new, now)
        return len(alerts)

    def _firing_work(self, incident_id: int, alert: IncomingAlert, now: float) -> Op[None]:
        for plan, values in alert.plans:
            key = plan_key(plan, alert.fingerprint, alert.starts_at)
            yield from self._insert_job(key, PLAN, incident_id, plan, None, "", values, now, False, False)
        if not alert.plans or alert.notify_firing:
            for notifier in alert.notifiers:
                key = delivery_key(notifier, alert.fingerprint, alert.starts_at, "firing")
                yield from self._insert_job(key, DELIVERY, incident_id, notifier, "firing", alert.note, {}, now)

    def _resolved_work(self, incident_id: int, alert: IncomingAlert, is_new: bool, now: float) -> Op[None]:
        yield Stmt(
            "UPDATE incidents SET status = 'resolved', ends_at = ?, updated_at = ? WHERE id = ? AND status = 'firing'",
            (alert.ends_at, now, incident_id),
        )
        yield Stmt(_COPY_RESOLVED, (alert.fingerprint, alert.starts_at, now, now, now, incident_id))
        # A plan waiting for its next stage looks again now: a resolved alert counts as recovered.
        yield Stmt(
            "UPDATE jobs SET due_at = ? WHERE incident_id = ? AND kind = 'plan' AND state = 'pending' AND due_at > ?",
            (now, incident_id, now),
        )
        if is_new and not alert.plans:
            for notifier in alert.notifiers:
                key = delivery_key(notifier, alert.fingerprint, alert.starts_at, "resolved")
                yield from self._insert_job(key, DELIVERY, incident_id, notifier, "resolved", "", {}, now)

    def _insert_job(
        self, key: str, kind: str, incident_id: int, target: str, notify_kind: str | None, note: str,
        values: Mapping[str, str], now: float, manual: bool = False, dry_run: bool = False,
    ) -> Op[bool]:  # fmt: skip
        result = yield Stmt(
            _INSERT_JOB,
            (key, kind, incident_id, target, notify_kind, note, _json(values), now, int(manual), int(dry_run),
             now, now),
        )  # fmt: skip
        return result.rowcount > 0

    # -- workers --------------------------------------------------------------------------------

    async def claim(self, owner: str, limit: int, lease: float, now: float) -> list[Job]:
        """Lease up to ``limit`` due jobs; an expired lease of another owner counts as an interruption."""
        return await self._run(self._claim(owner, limit, lease, now))

    def _claim(self, owner: str, limit: int, lease: float, now: float) -> Op[list[Job]]:
        result = yield Stmt(
            "SELECT id FROM jobs WHERE state = 'pending' AND due_at <= ? "
            "AND (lease_until IS NULL OR lease_until < ?) ORDER BY due_at, id LIMIT ?" + self.dialect.skip_locked,
            (now, now, limit),
        )
        ids = [row[0] for row in result.rows]
        if not ids:
            return []
        yield Stmt(
            "UPDATE jobs SET interrupted = interrupted + (CASE WHEN lease_owner IS NULL THEN 0 ELSE 1 END), "
            f"lease_owner = ?, lease_until = ?, updated_at = ? WHERE id IN ({_marks(ids)})",
            (owner, now + lease, now, *ids),
        )
        result = yield Stmt(f"{_JOB_SELECT} WHERE j.id IN ({_marks(ids)}) ORDER BY j.due_at, j.id", ids)
        return [_job(row) for row in result.rows]

    async def extend_lease(self, job_id: int, owner: str, until: float) -> bool:
        return await self._run(self._extend_lease(job_id, owner, until))

    @staticmethod
    def _extend_lease(job_id: int, owner: str, until: float) -> Op[bool]:
        result = yield Stmt(
            "UPDATE jobs SET lease_until = ? WHERE id = ? AND lease_owner = ? AND state = 'pending'",
            (until, job_id, owner),
        )
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
        for delivery in decided.deliveries:
            yield from self._insert_job(
                delivery.key, DELIVERY, job.incident.id, delivery.notifier, delivery.kind, delivery.note, {}, now
            )
        return True

    def _incident_status(self, incident_id: int) -> Op[str]:
        result = yield Stmt(f"SELECT status FROM incidents WHERE id = ?{self.dialect.row_lock}", (incident_id,))
        return result.rows[0][0]

    async def gate(
        self, job: Job, owner: str, gate: Gate, now: float, blocked: Callable[[str, bool], Outcome]
    ) -> Outcome | None:
        """Check pauses, cooldown, caps and the circuit breaker before an attempt, atomically.

        Returns None when the attempt may go ahead (the run is then counted against the caps), else the
        outcome that ended the job: recovered when the alert already resolved, else
        ``blocked(reason, breaker_tripped)``.
        """
        return await self._run(self._gate(job, owner, gate, now, blocked))

    def _gate(
        self, job: Job, owner: str, gate: Gate, now: float, blocked: Callable[[str, bool], Outcome]
    ) -> Op[Outcome | None]:
        if self.dialect.gate_lock:
            yield Stmt(self.dialect.gate_lock, (GATE_LOCK,))
        status = yield from self._incident_status(job.incident.id)
        if status == "resolved":
            decided = Outcome(RECOVERED, "the alert resolved before the attempt")
            yield from self._end(job, owner, decided, now, attempted=False)
            return decided
        reason, tripped = ("", False) if job.manual else (yield from self._limits(job, gate, now))
        if not reason:
            yield Stmt(
                "UPDATE jobs SET run_started_at = COALESCE(run_started_at, ?) WHERE id = ? AND lease_owner = ?",
                (now, job.id, owner),
            )
            return None
        decided = blocked(reason, tripped)
        yield from self._end(job, owner, decided, now, attempted=False)
        return decided

    def _limits(self, job: Job, gate: Gate, now: float) -> Op[tuple[str, bool]]:
        result = yield Stmt(
            "SELECT scope, reason FROM pauses WHERE scope IN (?, ?) ORDER BY scope", (GLOBAL, job.target)
        )
        if result.rows:
            scope, why = result.rows[0]
            return f"automation paused ({'all plans' if scope == GLOBAL else 'this plan'}): {why}", False
        # Dry runs touch nothing, so they do not count towards the breaker (dry_run is INTEGER 0/1 in both).
        result = yield Stmt(
            "SELECT COUNT(*) FROM actions WHERE started_at > ? AND dry_run = 0", (now - gate.breaker_window,)
        )
        count = result.rows[0][0]
        if count >= gate.breaker_max:
            why = f"circuit breaker: {count} actions within {gate.breaker_window:g}s"
            yield Stmt(
                "INSERT INTO pauses (scope, reason, at) VALUES (?, ?, ?) ON CONFLICT (scope) DO NOTHING",
                (GLOBAL, why, now),
            )
            return f"automation paused: {why}", True
        if not gate.first:
            return "", False
        if gate.cooldown > 0:
            result = yield Stmt(
                "SELECT MAX(COALESCE(finished_at, ?)) FROM jobs WHERE kind = 'plan' AND target = ? "
                "AND vals = ? AND run_started_at IS NOT NULL AND id <> ?",
                (now, job.target, _json(job.values), job.id),
            )
            last = result.rows[0][0]
            if last is not None and last > now - gate.cooldown:
                return f"cooldown: the plan last ran for these labels {now - last:.0f}s ago", False
        for cap, window, unit in ((gate.per_hour, 3600.0, "hour"), (gate.per_day, 86400.0, "day")):
            if cap is None:
                continue
            result = yield Stmt(
                "SELECT COUNT(*) FROM jobs WHERE kind = 'plan' AND target = ? AND run_started_at > ?",
                (job.target, now - window),
            )
            if result.rows[0][0] >= cap:
                return f"max_runs: {cap} runs per {unit} reached", False
        return "", False

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
        return await self._run(self._actions_of((job_id,)))

    @staticmethod
    def _actions_of(job_ids: Sequence[int]) -> Op[list[ActionRecord]]:
        if not job_ids:
            return []
        result = yield Stmt(
            f"SELECT {_ACTION_COLUMNS} FROM actions WHERE job_id IN ({_marks(job_ids)}) ORDER BY id", job_ids
        )
        return [_action(row) for row in result.rows]

    # -- admin ----------------------------------------------------------------------------------

    async def pause(self, scope: str, reason: str, now: float) -> None:
        await self._run(self._pause(scope, reason, now))

    @staticmethod
    def _pause(scope: str, reason: str, now: float) -> Op[None]:
        yield Stmt(
            "INSERT INTO pauses (scope, reason, at) VALUES (?, ?, ?) "
            "ON CONFLICT (scope) DO UPDATE SET reason = excluded.reason, at = excluded.at",
            (scope, reason, now),
        )

    async def resume(self, scope: str) -> bool:
        return await self._run(self._resume(scope))

    @staticmethod
    def _resume(scope: str) -> Op[bool]:
        result = yield Stmt("DELETE FROM pauses WHERE scope = ?", (scope,))
        return result.rowcount > 0

    async def pauses(self) -> dict[str, tuple[str, float]]:
        """Active pauses by scope ('*' for all plans): (reason, since)."""
        return await self._run(self._pauses())

    @staticmethod
    def _pauses() -> Op[dict[str, tuple[str, float]]]:
        result = yield Stmt("SELECT scope, reason, at FROM pauses ORDER BY scope")
        return {scope: (reason, at) for scope, reason, at in result.rows}

    async def incidents(
        self, limit: int = 50, status: str | None = None, incident_id: int | None = None
    ) -> list[IncidentView]:
        """Newest incidents first, each with its jobs (plan runs, deliveries) and actions."""
        return await self._run(self._incidents(limit, status, incident_id))

    def _incidents(self, limit: int, status: str | None, incident_id: int | None) -> Op[list[IncidentView]]:
        where, params = ["1 = 1"], []
        for column, value in (("i.status", status), ("i.id", incident_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        result = yield Stmt(
            f"SELECT {_INCIDENT_COLUMNS} FROM incidents i WHERE {' AND '.join(where)} ORDER BY i.id DESC LIMIT ?",
            (*params, limit),
        )
        views = {row[0]: IncidentView(_incident(row)) for row in result.rows}
        if not views:
            return []
        result = yield Stmt(f"{_JOB_SELECT} WHERE j.incident_id IN ({_marks(list(views))}) ORDER BY j.id", list(views))
        jobs = {}
        for row in result.rows:
            job = _job(row)
            jobs[job.id] = job
            views[job.incident.id].jobs.append(job)
        for action in (yield from self._actions_of(list(jobs))):
            views[jobs[action.job_id].incident.id].actions.append(action)
        return list(views.values())

    async def start_manual_run(
        self, plan: str, labels: Mapping[str, str], values: Mapping[str, str], dry_run: bool, run_id: str,
        now: float, started: str,
    ) -> int:  # fmt: skip
        """Queue a plan run asked for by a person: a synthetic incident and a plan job; returns the job id."""
        return await self._run(self._start_manual_run(plan, labels, values, dry_run, run_id, now, started))

    def _start_manual_run(
        self, plan: str, labels: Mapping[str, str], values: Mapping[str, str], dry_run: bool, run_id: str,
        now: float, started: str,
    ) -> Op[int]:  # fmt: skip
        fingerprint = f"manual-{run_id}"
        result = yield Stmt(
            _UPSERT_INCIDENT, (fingerprint, started, "firing", _json(labels), "{}", None, "", "", 0, now, now)
        )
        incident_id = result.rows[0][0]
        key = plan_key(plan, fingerprint, started)
        yield from self._insert_job(key, PLAN, incident_id, plan, None, "run by hand", values, now, True, dry_run)
        result = yield Stmt("SELECT id FROM jobs WHERE key = ?", (key,))
        return result.rows[0][0]

    async def queue_stats(self, now: float) -> dict[str, tuple[int, float]]:
        """Per job kind: pending count and the age in seconds of the oldest job that is due."""
        return await self._run(self._queue_stats(now))

    @staticmethod
    def _queue_stats(now: float) -> Op[dict[str, tuple[int, float]]]:
        result = yield Stmt(
            "SELECT kind, COUNT(*), MIN(CASE WHEN due_at <= ? THEN due_at END) FROM jobs "
            "WHERE state = 'pending' GROUP BY kind",
            (now,),
        )
        stats = {PLAN: (0, 0.0), DELIVERY: (0, 0.0)}
        for kind, count, oldest in result.rows:
            stats[kind] = (count, max(0.0, now - oldest) if oldest is not None else 0.0)
        return stats
