"""The reads behind the admin API and ``/metrics``: incidents with their work, pauses, queue figures.

They change nothing, so a console or an export can use them without going near the workers' writes.
"""

from __future__ import annotations

from collections.abc import Sequence

from opsloop.receiver.domain import DELIVERY, PLAN, ActionRecord, IncidentView
from opsloop.receiver.store.driver import Op, Stmt, marks
from opsloop.receiver.store.schema import (
    ACTION_COLUMNS,
    INCIDENT_COLUMNS,
    JOB_SELECT,
    action_row,
    incident_row,
    job_row,
)


def actions_of(job_ids: Sequence[int]) -> Op[list[ActionRecord]]:
    if not job_ids:
        return []
    result = yield Stmt(f"SELECT {ACTION_COLUMNS} FROM actions WHERE job_id IN ({marks(job_ids)}) ORDER BY id", job_ids)
    return [action_row(row) for row in result.rows]


def pauses() -> Op[dict[str, tuple[str, float]]]:
    result = yield Stmt("SELECT scope, reason, at FROM pauses ORDER BY scope")
    return {scope: (reason, at) for scope, reason, at in result.rows}


def incidents(limit: int, status: str | None, incident_id: int | None) -> Op[list[IncidentView]]:
    where, params = ["1 = 1"], []
    for column, value in (("i.status", status), ("i.id", incident_id)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    result = yield Stmt(
        f"SELECT {INCIDENT_COLUMNS} FROM incidents i WHERE {' AND '.join(where)} ORDER BY i.id DESC LIMIT ?",
        (*params, limit),
    )
    views = {row[0]: IncidentView(incident_row(row)) for row in result.rows}
    if not views:
        return []
    result = yield Stmt(f"{JOB_SELECT} WHERE j.incident_id IN ({marks(list(views))}) ORDER BY j.id", list(views))
    jobs = {}
    for row in result.rows:
        job = job_row(row)
        jobs[job.id] = job
        views[job.incident.id].jobs.append(job)
    for action in (yield from actions_of(list(jobs))):
        views[jobs[action.job_id].incident.id].actions.append(action)
    return list(views.values())


def queue_stats(now: float) -> Op[dict[str, tuple[int, float]]]:
    """Per kind: pending jobs, and how long the oldest has waited.

    A plan step waits from when it became due. A delivery that was already tried waits from when it was
    queued (its first attempt), not from its latest retry round: a notifier failing for an hour shows an
    hour, however often it was retried.
    """
    result = yield Stmt(
        "SELECT kind, COUNT(*), MIN(CASE WHEN kind = ? AND attempts > 0 THEN created_at "
        "WHEN due_at <= ? THEN due_at END) FROM jobs WHERE state = 'pending' GROUP BY kind",
        (DELIVERY, now),
    )
    stats = {PLAN: (0, 0.0), DELIVERY: (0, 0.0)}
    for kind, count, oldest in result.rows:
        stats[kind] = (count, max(0.0, now - oldest) if oldest is not None else 0.0)
    return stats


def lease_owners(now: float) -> Op[list[str]]:
    """Owners holding a live lease on pending work (to find a dead predecessor's)."""
    result = yield Stmt(
        "SELECT DISTINCT lease_owner FROM jobs WHERE state = 'pending' AND lease_until >= ? ORDER BY lease_owner",
        (now,),
    )
    return [row[0] for row in result.rows]
