"""The store's tables and how their rows map to domain objects.

Column types that differ between SQLite and PostgreSQL are placeholders filled from the backend's
``Dialect``; every other piece of SQL text is shared.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opsloop.receiver.domain import ActionRecord, Approval, Event, Incident, Job
from opsloop.receiver.store.grouping import GROUPS_SCHEMA, HELD_DUE
from opsloop.receiver.store.moves import MOVES_SCHEMA


@dataclass(frozen=True)
class Dialect:
    """What differs between backends in the SQL text itself."""

    id_column: str
    real: str
    skip_locked: str
    row_lock: str
    gate_lock: str | None
    contains: str
    """A condition true when ``{column}`` holds the text bound to its ``?`` as a substring."""
    json_field: str
    """The text of key ``{name}`` (a constant, never input) of the JSON object in ``{column}``."""
    add_column: str = "ADD COLUMN"
    """How an upgrade adds a column; SQLite has no ``IF NOT EXISTS`` there: its backend ignores the
    "duplicate column" error of a store that has the column already."""


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def json_text(value: Mapping[str, str]) -> str:
    """Labels and values as stored: canonical JSON, so equal maps compare equal in SQL. (One encoder for
    all: ``json.dumps`` with options builds a new one per call, three times per webhook.)"""
    return _CANONICAL.encode(dict(value))


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
CREATE TABLE IF NOT EXISTS send_slots (
    key TEXT PRIMARY KEY,
    next_at {real} NOT NULL,
    last_at {real} NOT NULL,
    spacing {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS message_refs (
    key TEXT PRIMARY KEY,
    ref TEXT NOT NULL,
    at {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS slot_holds (
    job_id BIGINT PRIMARY KEY,
    key TEXT NOT NULL,
    at {real} NOT NULL,
    urgent INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_received ON incidents (received_at);
CREATE TABLE IF NOT EXISTS approvals (
    job_id BIGINT NOT NULL REFERENCES jobs (id),
    stage INTEGER NOT NULL,
    state TEXT NOT NULL,
    requested_at {real} NOT NULL,
    deadline {real} NOT NULL,
    decided_by TEXT NOT NULL DEFAULT '',
    decided_at {real},
    reason TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (job_id, stage)
);
CREATE TABLE IF NOT EXISTS events (
    id {id_column},
    incident_id BIGINT,
    job_id BIGINT,
    at {real} NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    title TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_incident ON events (incident_id);
CREATE INDEX IF NOT EXISTS events_at ON events (at);
CREATE TABLE IF NOT EXISTS console_sessions (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at {real} NOT NULL,
    expires_at {real} NOT NULL
);
"""

INCIDENT_COLUMNS = (
    "i.id, i.fingerprint, i.starts_at, i.status, i.labels, i.annotations, i.ends_at, i.generator_url, "
    "i.external_url, i.truncated_alerts, i.received_at"
)
JOB_COLUMNS = (
    "j.id, j.key, j.kind, j.target, j.notify_kind, j.note, j.vals, j.state, j.stage, j.phase, j.due_at, "
    "j.run_started_at, j.attempts, j.interrupted, j.manual, j.dry_run, j.result, j.created_at, j.finished_at, "
    "j.updated_at"
)
JOB_SELECT = (
    f"SELECT {JOB_COLUMNS}, {INCIDENT_COLUMNS}, j.gid, j.ref FROM jobs j JOIN incidents i ON i.id = j.incident_id"
)
APPROVAL_COLUMNS = "job_id, stage, state, requested_at, deadline, decided_by, decided_at, reason"
EVENT_COLUMNS = "id, incident_id, job_id, at, kind, actor, title, detail"
ACTION_COLUMNS = "id, job_id, plan, stage, position, type, state, detail, dry_run, started_at, finished_at"
UPSERT_INCIDENT = """
INSERT INTO incidents (fingerprint, starts_at, status, labels, annotations, ends_at, generator_url,
                       external_url, truncated_alerts, received_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (fingerprint, starts_at) DO UPDATE SET
    annotations = excluded.annotations, generator_url = excluded.generator_url,
    external_url = excluded.external_url, truncated_alerts = excluded.truncated_alerts,
    updated_at = excluded.updated_at
RETURNING id, received_at, status
"""
URGENCY = (
    "CASE WHEN {kind} = 'escalation' THEN 0 ELSE (SELECT CASE WHEN labels LIKE {critical} THEN 1 "
    "WHEN labels LIKE {warning} THEN 2 ELSE 3 END FROM incidents WHERE incidents.id = {incident}) END"
)
URGENCY_PARAMS = ('%"severity":"critical"%', '%"severity":"warning"%')
"""A job's urgency, 0 first: escalations, then by the alert's severity (labels are stored as canonical JSON,
so ``"severity":"critical"`` only matches that label, never a value containing it). Kept on the job row
(an alert's labels never change), indexed with the state and due time, so a claim reads only what it takes."""
_INSERT_JOB = f"""
INSERT INTO jobs (key, kind, incident_id, target, notify_kind, note, vals, state, due_at, manual, dry_run,
                  created_at, updated_at, gid, urgency)
VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', {{due}}, ?, ?, ?, ?, ?,
        {URGENCY.format(kind="?", critical="?", warning="?", incident="?")})
ON CONFLICT (key) DO NOTHING
RETURNING id
"""
INSERT_JOB = _INSERT_JOB.format(due="?")
INSERT_HELD_JOB = _INSERT_JOB.format(due=HELD_DUE)
"""A delivery that joins a group: due when its group is held back to, if that is later (``grouping.HELD_DUE``)."""
# "%%" is one wildcard to LIKE, and what a driver that reads "%" as a placeholder turns into "%".
BACKFILL_URGENCY = URGENCY.format(
    kind="notify_kind",
    critical='\'%%"severity":"critical"%%\'',
    warning='\'%%"severity":"warning"%%\'',
    incident="jobs.incident_id",
)
UPGRADE = f"""
ALTER TABLE jobs {{add_column}} urgency INTEGER;
ALTER TABLE jobs {{add_column}} gid TEXT;
ALTER TABLE jobs {{add_column}} batch BIGINT;
ALTER TABLE jobs {{add_column}} ref TEXT;
UPDATE jobs SET urgency = ({BACKFILL_URGENCY}) WHERE urgency IS NULL;
CREATE TABLE IF NOT EXISTS delivery_groups (job_id BIGINT PRIMARY KEY, gid TEXT NOT NULL, batch BIGINT, ref TEXT);
ALTER TABLE delivery_groups {{add_column}} ref TEXT;
ALTER TABLE group_holds {{add_column}} size INTEGER;
UPDATE jobs SET gid = (SELECT g.gid FROM delivery_groups g WHERE g.job_id = jobs.id),
    batch = (SELECT g.batch FROM delivery_groups g WHERE g.job_id = jobs.id),
    ref = (SELECT g.ref FROM delivery_groups g WHERE g.job_id = jobs.id)
    WHERE id IN (SELECT job_id FROM delivery_groups);
DROP TABLE delivery_groups;
CREATE INDEX IF NOT EXISTS jobs_batch ON jobs (batch) WHERE batch IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_pending_claim ON jobs (urgency, due_at, id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS jobs_pending_group ON jobs (gid, id) WHERE state = 'pending';
DROP INDEX IF EXISTS jobs_claim;
DROP INDEX IF EXISTS jobs_group;
DROP INDEX IF EXISTS jobs_due
"""
"""Columns added after stores existed, filled in for the rows written before. Runs on every open; finds
nothing to fill once done.

A grouped delivery's group, and the message it went out in (``batch``, ``ref``), are columns of its job
row. Stores written before kept them in a table of their own, ``delivery_groups``, one more row to
insert per grouped webhook and one more to update per member sent: its rows move into ``jobs`` and the
table goes (created empty first where it is missing, so the same statements run on every store).

The claim and group indexes hold pending jobs only (every statement that reads through them asks for
``state = 'pending'``, written as that literal so both backends match the index's condition): a job that
ends leaves them instead of adding a row version to each, and they stay the size of the backlog, not of
the history. They replace ``jobs_claim (state, urgency, due_at, id)`` and ``jobs_group (gid, state,
id)``, which held every job, and ``jobs_due (state, due_at)``, redundant since ``jobs_claim`` came."""


def schema_statements(dialect: Dialect) -> list[str]:
    text = ";".join((SCHEMA, MOVES_SCHEMA, GROUPS_SCHEMA, UPGRADE)).format(
        id_column=dialect.id_column, real=dialect.real, add_column=dialect.add_column
    )
    return [s.strip() for s in text.split(";") if s.strip()]


def incident_row(row: Sequence[Any]) -> Incident:
    return Incident(
        id=row[0], fingerprint=row[1], starts_at=row[2], status=row[3], labels=json.loads(row[4]),
        annotations=json.loads(row[5]), ends_at=row[6], generator_url=row[7], external_url=row[8],
        truncated_alerts=row[9], received_at=row[10],
    )  # fmt: skip


def job_row(row: Sequence[Any]) -> Job:
    return Job(
        id=row[0], key=row[1], kind=row[2], target=row[3], notify_kind=row[4], note=row[5],
        values=json.loads(row[6]), state=row[7], stage=row[8], phase=row[9], due_at=row[10],
        run_started_at=row[11], attempts=row[12], interrupted=row[13], manual=bool(row[14]),
        dry_run=bool(row[15]), result=row[16], created_at=row[17], finished_at=row[18], updated_at=row[19],
        incident=incident_row(row[20:-2]), group=row[-2] or "", message_ref=row[-1] or "",
    )  # fmt: skip


def action_row(row: Sequence[Any]) -> ActionRecord:
    return ActionRecord(
        id=row[0], job_id=row[1], plan=row[2], stage=row[3], position=row[4], type=row[5], state=row[6],
        detail=row[7], dry_run=bool(row[8]), started_at=row[9], finished_at=row[10],
    )  # fmt: skip


def approval_row(row: Sequence[Any]) -> Approval:
    return Approval(*row)


def event_row(row: Sequence[Any]) -> Event:
    return Event(*row)
