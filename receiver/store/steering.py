"""What people change, through the admin API and the console: pauses, runs by hand, approvals of plan
stages and console sessions, each recorded as a timeline event with who did it.

A mixin of ``Store`` (which supplies ``_run``, ``_insert_job`` and ``_reschedule``), kept apart from the
workers' writes in ``ops``. An approval is decided by one conditional UPDATE, so a person, a second
replica and the timeout cannot all decide it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from opsloop.receiver.domain import DELIVERY, GLOBAL, PENDING, PLAN, Approval, Job, ManualRun, NewDelivery, plan_key
from opsloop.receiver.store.driver import Op, RunsOps, Stmt
from opsloop.receiver.store.schema import APPROVAL_COLUMNS, UPSERT_INCIDENT, approval_row, json_text


def scope_words(scope: str) -> str:
    return "all plans" if scope == GLOBAL else f"plan {scope}"


def event(
    incident_id: int | None, job_id: int | None, kind: str, title: str, detail: str, actor: str, now: float
) -> Op[None]:
    yield Stmt(
        "INSERT INTO events (incident_id, job_id, at, kind, actor, title, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (incident_id, job_id, now, kind, actor, title, detail),
    )


class SteeringOps(RunsOps):
    _insert_job: Callable[..., Op[bool]]
    _reschedule: Callable[..., Op[bool]]

    # -- pauses and timeline events -------------------------------------------------------------

    async def pause(self, scope: str, reason: str, now: float, actor: str) -> None:
        await self._run(self._pause(scope, reason, now, actor))

    @staticmethod
    def _pause(scope: str, reason: str, now: float, actor: str) -> Op[None]:
        yield Stmt(
            "INSERT INTO pauses (scope, reason, at) VALUES (?, ?, ?) "
            "ON CONFLICT (scope) DO UPDATE SET reason = excluded.reason, at = excluded.at",
            (scope, reason, now),
        )
        yield from event(None, None, "pause", f"paused {scope_words(scope)}", reason, actor, now)

    async def resume(self, scope: str, now: float, actor: str) -> bool:
        return await self._run(self._resume(scope, now, actor))

    @staticmethod
    def _resume(scope: str, now: float, actor: str) -> Op[bool]:
        result = yield Stmt("DELETE FROM pauses WHERE scope = ?", (scope,))
        if result.rowcount > 0:
            yield from event(None, None, "resume", f"resumed {scope_words(scope)}", "", actor, now)
        return result.rowcount > 0

    async def record_event(
        self, incident_id: int | None, job_id: int | None, kind: str, title: str, detail: str, now: float,
        actor: str = "",
    ) -> None:  # fmt: skip
        """Add a line to an incident's timeline (without ``incident_id``: to automation as a whole)."""
        await self._run(event(incident_id, job_id, kind, title, detail, actor, now))

    # -- runs by hand ---------------------------------------------------------------------------

    async def start_manual_run(
        self, plan: str, labels: Mapping[str, str], values: Mapping[str, str], dry_run: bool, run_id: str,
        now: float, started: str, actor: str,
    ) -> ManualRun:  # fmt: skip
        """Queue a plan run asked for by a person: a synthetic incident and a plan job, recorded with ``actor``."""
        return await self._run(self._start_manual_run(plan, labels, values, dry_run, run_id, now, started, actor))

    def _start_manual_run(
        self, plan: str, labels: Mapping[str, str], values: Mapping[str, str], dry_run: bool, run_id: str,
        now: float, started: str, actor: str,
    ) -> Op[ManualRun]:  # fmt: skip
        fingerprint = f"manual-{run_id}"
        result = yield Stmt(
            UPSERT_INCIDENT, (fingerprint, started, "firing", json_text(labels), "{}", None, "", "", 0, now, now)
        )
        incident_id = result.rows[0][0]
        key = plan_key(plan, fingerprint, started)
        yield from self._insert_job(key, PLAN, incident_id, plan, None, "run by hand", values, now, True, dry_run)
        result = yield Stmt("SELECT id FROM jobs WHERE key = ?", (key,))
        job_id = result.rows[0][0]
        title = f"ran plan {plan} by hand" + (" (dry run)" if dry_run else "")
        detail = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
        yield from event(incident_id, job_id, "manual", title, detail, actor, now)
        return ManualRun(job_id, incident_id)

    # -- approvals ------------------------------------------------------------------------------

    async def approval(self, job_id: int, stage: int) -> Approval | None:
        return await self._run(self._approval(job_id, stage))

    @staticmethod
    def _approval(job_id: int, stage: int) -> Op[Approval | None]:
        result = yield Stmt(f"SELECT {APPROVAL_COLUMNS} FROM approvals WHERE job_id = ? AND stage = ?", (job_id, stage))
        return approval_row(result.rows[0]) if result.rows else None

    async def request_approval(
        self, job: Job, owner: str, now: float, deadline: float, deliveries: Sequence[NewDelivery]
    ) -> bool:
        """Ask for approval of the job's stage: the request, the job's wait until ``deadline`` and the
        messages that say so, in one transaction; False when the lease was lost."""
        return await self._run(self._request_approval(job, owner, now, deadline, deliveries))

    def _request_approval(
        self, job: Job, owner: str, now: float, deadline: float, deliveries: Sequence[NewDelivery]
    ) -> Op[bool]:
        waiting = yield from self._reschedule(job.id, owner, deadline, now, None, None, False, "waiting for approval")
        if not waiting:
            return False
        yield Stmt(
            f"INSERT INTO approvals ({APPROVAL_COLUMNS}) VALUES (?, ?, ?, ?, ?, '', NULL, '') "
            "ON CONFLICT (job_id, stage) DO NOTHING",
            (job.id, job.stage, PENDING, now, deadline),
        )
        for d in deliveries:
            yield from self._insert_job(d.key, DELIVERY, job.incident.id, d.notifier, d.kind, d.note, {}, now)
        return True

    async def decide_approval(self, job_id: int, stage: int, state: str, actor: str, reason: str, now: float) -> bool:
        """Decide a pending approval of a pending run: True only for the one caller whose decision counted.

        The waiting job becomes due at once, so a worker acts on the decision.
        """
        return await self._run(self._decide_approval(job_id, stage, state, actor, reason, now))

    @staticmethod
    def _decide_approval(job_id: int, stage: int, state: str, actor: str, reason: str, now: float) -> Op[bool]:
        result = yield Stmt(  # a run that already ended (its alert resolved) has nothing left to decide
            "UPDATE approvals SET state = ?, decided_by = ?, decided_at = ?, reason = ? "
            "WHERE job_id = ? AND stage = ? AND state = ? AND EXISTS (SELECT 1 FROM jobs WHERE id = ? AND state = ?)",
            (state, actor, now, reason, job_id, stage, PENDING, job_id, PENDING),
        )
        if result.rowcount != 1:
            return False
        yield Stmt("UPDATE jobs SET due_at = ? WHERE id = ? AND state = ? AND due_at > ?", (now, job_id, PENDING, now))
        return True

    # -- console sessions (only the SHA-256 of a session id is stored) --------------------------

    async def create_session(self, digest: str, name: str, now: float, expires_at: float) -> None:
        await self._run(self._create_session(digest, name, now, expires_at))

    @staticmethod
    def _create_session(digest: str, name: str, now: float, expires_at: float) -> Op[None]:
        yield Stmt("DELETE FROM console_sessions WHERE expires_at <= ?", (now,))
        yield Stmt(
            "INSERT INTO console_sessions (id, name, created_at, expires_at) VALUES (?, ?, ?, ?)",
            (digest, name, now, expires_at),
        )

    async def session(self, digest: str, now: float) -> tuple[str, float] | None:
        """The name and expiry of a live session."""
        return await self._run(self._session(digest, now))

    @staticmethod
    def _session(digest: str, now: float) -> Op[tuple[str, float] | None]:
        result = yield Stmt(
            "SELECT name, expires_at FROM console_sessions WHERE id = ? AND expires_at > ?", (digest, now)
        )
        return (result.rows[0][0], result.rows[0][1]) if result.rows else None

    async def end_session(self, digest: str) -> None:
        await self._run(self._end_session(digest))

    @staticmethod
    def _end_session(digest: str) -> Op[None]:
        yield Stmt("DELETE FROM console_sessions WHERE id = ?", (digest,))
