"""The reads behind the admin API and ``/metrics``: incidents with their work, pauses, queue figures.

They change nothing, so a console or an export can use them without going near the workers' writes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from opsloop.receiver.domain import DELIVERY, PLAN, ActionRecord, IncidentView
from opsloop.receiver.store.driver import Op, Stmt, marks
from opsloop.receiver.store.schema import (
    ACTION_COLUMNS,
    APPROVAL_COLUMNS,
    EVENT_COLUMNS,
    INCIDENT_COLUMNS,
    JOB_SELECT,
    Dialect,
    action_row,
    approval_row,
    event_row,
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


@dataclass(frozen=True)
class IncidentFilter:
    """Which incidents to list (None: any); ``since``/``until`` bound the time the alert was received."""

    status: str | None = None
    alertname: str | None = None
    plan: str | None = None
    severity: str | None = None
    since: float | None = None
    until: float | None = None


def where(dialect: Dialect, found: IncidentFilter) -> tuple[str, list[object]]:
    """The WHERE clause of a filter. Labels are stored as canonical JSON (sorted keys, fixed separators,
    values JSON-escaped), so ``"name":"value"`` occurs in the text exactly when the label has that value."""
    clauses, params = ["1 = 1"], []
    for clause, value in (("i.status = ?", found.status), ("i.received_at >= ?", found.since),
                          ("i.received_at < ?", found.until)):  # fmt: skip
        if value is not None:
            clauses.append(clause)
            params.append(value)
    for name, value in (("alertname", found.alertname), ("severity", found.severity)):
        if value is not None:
            clauses.append(dialect.contains.format(column="i.labels"))
            params.append(f"{json.dumps(name)}:{json.dumps(value)}")
    if found.plan is not None:
        clauses.append("EXISTS (SELECT 1 FROM jobs p WHERE p.incident_id = i.id AND p.kind = 'plan' AND p.target = ?)")
        params.append(found.plan)
    return " AND ".join(clauses), params


def count_incidents(dialect: Dialect, found: IncidentFilter) -> Op[int]:
    clause, params = where(dialect, found)
    result = yield Stmt(f"SELECT COUNT(*) FROM incidents i WHERE {clause}", params)
    return result.rows[0][0]


def incidents(
    dialect: Dialect, limit: int, found: IncidentFilter, incident_id: int | None = None, offset: int = 0
) -> Op[list[IncidentView]]:
    clause, params = where(dialect, found)
    if incident_id is not None:
        clause += " AND i.id = ?"
        params.append(incident_id)
    result = yield Stmt(
        f"SELECT {INCIDENT_COLUMNS} FROM incidents i WHERE {clause} ORDER BY i.id DESC LIMIT ? OFFSET ?",
        (*params, limit, offset),
    )
    views = {row[0]: IncidentView(incident_row(row)) for row in result.rows}
    if not views:
        return []
    ids = list(views)
    result = yield Stmt(f"{JOB_SELECT} WHERE j.incident_id IN ({marks(ids)}) ORDER BY j.id", ids)
    jobs = {}
    for row in result.rows:
        job = job_row(row)
        jobs[job.id] = job
        views[job.incident.id].jobs.append(job)
    for action in (yield from actions_of(list(jobs))):
        views[jobs[action.job_id].incident.id].actions.append(action)
    if jobs:
        result = yield Stmt(
            f"SELECT {APPROVAL_COLUMNS} FROM approvals WHERE job_id IN ({marks(list(jobs))}) ORDER BY requested_at",
            list(jobs),
        )
        for row in result.rows:
            views[jobs[row[0]].incident.id].approvals.append(approval_row(row))
    result = yield Stmt(f"SELECT {EVENT_COLUMNS} FROM events WHERE incident_id IN ({marks(ids)}) ORDER BY id", ids)
    for row in result.rows:
        views[row[1]].events.append(event_row(row))
    if incident_id is not None:
        yield from _automation_events(views[incident_id])
    return list(views.values())


def _automation_events(view: IncidentView) -> Op[None]:
    """Pauses and resumes made while the incident was open, from the last pause made before it."""
    first = view.incident.received_at
    last = max([first, *(j.updated_at for j in view.jobs)])
    result = yield Stmt(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE incident_id IS NULL AND at <= ? AND at >= COALESCE("
        "(SELECT MAX(at) FROM events WHERE incident_id IS NULL AND kind = 'pause' AND at <= ?), ?) ORDER BY id",
        (last, first, first),
    )
    view.events.extend(event_row(row) for row in result.rows)


@dataclass(frozen=True)
class StatsIncident:
    id: int
    alertname: str
    starts_at: str
    received_at: float
    ends_at: str | None


@dataclass(frozen=True)
class StatsRun:
    incident_id: int
    plan: str
    state: str
    finished_at: float | None
    first_action_at: float | None
    actions: dict[str, int]
    """Actions of the run by result: ok, failed, interrupted, dry_run."""


@dataclass(frozen=True)
class StatsFacts:
    incidents: list[StatsIncident]
    runs: list[StatsRun]


def stats_facts(dialect: Dialect, since: float, until: float) -> Op[StatsFacts]:
    """What the statistics are computed from, in three aggregate queries over the received-time range."""
    window = "i.received_at >= ? AND i.received_at < ? AND i.fingerprint NOT LIKE ?"
    bounds = (since, until, "manual-%")  # runs by hand are not alerts
    alertname = dialect.json_field.format(column="i.labels", name="alertname")
    result = yield Stmt(
        f"SELECT i.id, {alertname}, i.starts_at, i.received_at, i.ends_at FROM incidents i WHERE {window}", bounds
    )
    incidents = [StatsIncident(r[0], r[1] or "", r[2], r[3], r[4]) for r in result.rows]
    result = yield Stmt(
        "SELECT a.job_id, a.state, a.dry_run, COUNT(*), MIN(a.started_at) FROM actions a "
        f"JOIN jobs j ON j.id = a.job_id JOIN incidents i ON i.id = j.incident_id WHERE {window} "
        "GROUP BY a.job_id, a.state, a.dry_run",
        bounds,
    )
    counts: dict[int, dict[str, int]] = {}
    first: dict[int, float] = {}
    for job_id, state, dry_run, count, started in result.rows:
        key = "dry_run" if dry_run and state == "ok" else state
        counts.setdefault(job_id, {})[key] = counts.get(job_id, {}).get(key, 0) + count
        first[job_id] = min(first.get(job_id, started), started)
    result = yield Stmt(
        "SELECT j.id, j.incident_id, j.target, j.state, j.finished_at FROM jobs j "
        f"JOIN incidents i ON i.id = j.incident_id WHERE j.kind = 'plan' AND {window}",
        bounds,
    )
    runs = [
        StatsRun(incident_id, plan, state, finished, first.get(job_id), counts.get(job_id, {}))
        for job_id, incident_id, plan, state, finished in result.rows
    ]
    return StatsFacts(incidents, runs)


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
