"""The store's tables and row mapping on both backends: every column read into its own field.

Rows are written and read with SQL on a connection of the test's own (the helper ``rows``), with a
different value in each column, so a field read from its neighbour's column shows.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import psycopg
from opsloop.receiver.store import Store, open_store
from opsloop.receiver.store.postgres import PostgresStore
from opsloop.receiver.store.schema import json_text
from opsloop.receiver.store.sqlite import SqliteStore

from tests.receiver.store.test_ops import NOW, alert
from tests.receiver.store.test_ops_rows import GROUPED, labelled, rows


def write(store: Store, *statements: str) -> None:
    """Run ``statements`` beside the store and commit them."""
    if isinstance(store, PostgresStore):
        with psycopg.connect(store.dsn) as db:  # commits on leaving
            for sql in statements:
                db.execute(sql)
        return
    with closing(sqlite3.connect(store.path)) as db:  # type: ignore[attr-defined]
        for sql in statements:
            db.execute(sql)
        db.commit()


def test_json_text_is_canonical() -> None:
    assert json_text({"b": "2", "a": "1 ü"}) == '{"a":"1 \\u00fc","b":"2"}'


async def test_the_store_reads_every_column_into_its_own_field(store: Store) -> None:
    await store.ingest([alert("plain"), alert("grouped", **GROUPED)], "http://am", 3, NOW)
    write(
        store,
        "UPDATE incidents SET ends_at = '2030-01-01T01:00:00Z', status = 'resolved', received_at = 1000.5",
        "UPDATE jobs SET note = 'a note', stage = 4, phase = 'wait', due_at = 1001.5, run_started_at = 1002.5, "
        "attempts = 5, interrupted = 6, manual = 1, dry_run = 0, result = 'r', created_at = 1003.5, "
        "finished_at = 1004.5, updated_at = 1005.5",
        "UPDATE jobs SET ref = 'ts-1' WHERE gid IS NOT NULL",
    )
    ((grouped_id, gid),) = rows(store, "SELECT id, gid FROM jobs WHERE gid IS NOT NULL")
    ((incident_id,),) = rows(store, f"SELECT incident_id FROM jobs WHERE id = {grouped_id}")
    other = "INSERT INTO actions (job_id, plan, stage, position, type, state, detail, dry_run, started_at) " + (
        f"SELECT id, 'x', 0, 0, 'x', 'x', '', 0, 0 FROM jobs WHERE id <> {grouped_id}"
    )
    write(
        store,
        other,  # two actions of the other job first: ids 1 and 2, so this one's id differs from its job's (1 or 2)
        other,
        "INSERT INTO actions (job_id, plan, stage, position, type, state, detail, dry_run, started_at, finished_at) "
        f"VALUES ({grouped_id}, 'fix', 2, 3, 'command', 'ok', 'done', 0, 1010.5, 1011.5)",
        "INSERT INTO approvals (job_id, stage, state, requested_at, deadline, decided_by, decided_at, reason) "
        f"VALUES ({grouped_id}, 2, 'approved', 1020.5, 1021.5, 'ann', 1022.5, 'why')",
        "INSERT INTO events (incident_id, job_id, at, kind, actor, title, detail) "
        f"VALUES ({incident_id}, {grouped_id}, 1030.5, 'note', 'ann', 'a title', 'a detail')",
    )
    (view,) = await store.incidents(incident_id=incident_id)
    incident = view.incident
    (found,) = rows(
        store,
        "SELECT id, fingerprint, starts_at, status, labels, annotations, ends_at, generator_url, external_url, "
        f"truncated_alerts, received_at FROM incidents WHERE id = {incident_id}",
    )
    assert (incident.id, incident.fingerprint, incident.starts_at, incident.status, json_text(incident.labels),
            json_text(incident.annotations), incident.ends_at, incident.generator_url, incident.external_url,
            incident.truncated_alerts, incident.received_at) == found  # fmt: skip
    assert found[1:] == ("grouped", "2030-01-01T00:00:00Z", "resolved", '{"alertname":"A","fp":"grouped"}',
                         '{"summary":"s"}', "2030-01-01T01:00:00Z", "http://g", "http://am", 3, 1000.5)  # fmt: skip
    (job,) = view.jobs
    (found,) = rows(
        store,
        "SELECT id, key, kind, target, notify_kind, note, vals, state, stage, phase, due_at, run_started_at, "
        "attempts, interrupted, manual, dry_run, result, created_at, finished_at, updated_at FROM jobs "
        f"WHERE id = {grouped_id}",
    )
    assert (job.id, job.key, job.kind, job.target, job.notify_kind, job.note, job.values, job.state, job.stage,
            job.phase, job.due_at, job.run_started_at, job.attempts, job.interrupted, job.manual, job.dry_run,
            job.result, job.created_at, job.finished_at, job.updated_at) == (
        *found[:6], json.loads(found[6]), *found[7:14], bool(found[14]), bool(found[15]), *found[16:]
    )  # fmt: skip
    assert found[5:] == ("a note", "{}", "pending", 4, "wait", 1001.5, 1002.5, 5, 6, 1, 0, "r", 1003.5, 1004.5, 1005.5)
    assert (job.incident, job.group, job.message_ref) == (incident, gid, "ts-1")
    (plain,) = [j for v in await store.incidents() for j in v.jobs if j.id != grouped_id]
    assert (plain.incident.fingerprint, plain.group, plain.message_ref) == ("plain", "", "")
    (action,) = view.actions
    (found,) = rows(
        store,
        "SELECT id, job_id, plan, stage, position, type, state, detail, dry_run, started_at, finished_at "
        f"FROM actions WHERE job_id = {grouped_id}",
    )
    assert (action.id, action.job_id, action.plan, action.stage, action.position, action.type, action.state,
            action.detail, int(action.dry_run), action.started_at, action.finished_at) == found  # fmt: skip
    assert action.id != action.job_id  # else a field read from its neighbour's column would not show
    assert (action.plan, action.stage, action.position, action.dry_run, action.finished_at) == (
        "fix",
        2,
        3,
        False,
        1011.5,
    )
    (approval,) = view.approvals
    assert (approval.job_id, approval.stage, approval.state, approval.requested_at, approval.deadline,
            approval.decided_by, approval.decided_at, approval.reason) == (
        grouped_id, 2, "approved", 1020.5, 1021.5, "ann", 1022.5, "why"
    )  # fmt: skip
    assert await store.approval(grouped_id, 2) == approval
    (event,) = view.events
    assert (event.incident_id, event.job_id, event.at, event.kind, event.actor, event.title, event.detail) == (
        incident_id, grouped_id, 1030.5, "note", "ann", "a title", "a detail"
    )  # fmt: skip


async def test_each_jobs_urgency_comes_from_its_alerts_severity(store: Store) -> None:
    """0 for escalations, then 1 critical, 2 warning, 3 anything else (a value containing "critical" too)."""
    await store.ingest(
        [labelled(alert("crit"), severity="critical"), labelled(alert("warn"), severity="warning"),
         labelled(alert("info"), severity="info"), labelled(alert("tricky"), note='"severity":"critical"')],
        "", 0, NOW,
    )  # fmt: skip
    found = rows(store, "SELECT i.fingerprint, j.urgency FROM jobs j JOIN incidents i ON i.id = j.incident_id")
    assert sorted(found) == [("crit", 1), ("info", 3), ("tricky", 3), ("warn", 2)]
    claimed = await store.claim("w", 2, 30, NOW)  # the most urgent first
    assert sorted(j.incident.fingerprint for j in claimed) == ["crit", "warn"]


def catalog(store: Store, postgres: str, sqlite: str) -> set[str]:
    """The names the database's own catalog lists, asked in the backend's words."""
    return {name for (name,) in rows(store, postgres if isinstance(store, PostgresStore) else sqlite)}


def indexes(store: Store) -> set[str]:
    """The jobs table's index names, as the database lists them."""
    return catalog(store, "SELECT indexname FROM pg_indexes WHERE tablename = 'jobs'",
                   "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs'")  # fmt: skip


NO_RECORD = "DROP TABLE IF EXISTS opsloop_schema"
"""Stores made before these statements changed have no record of the statements that made them
(PostgreSQL keeps one, so that a start on a current schema runs no DDL; SQLite has none to drop)."""


async def test_opening_a_store_replaces_the_indexes_of_every_job_by_indexes_of_pending_jobs(store: Store) -> None:
    pending = {"jobs_pending_claim", "jobs_pending_group"}
    assert pending <= indexes(store)
    assert not {"jobs_due", "jobs_claim", "jobs_group"} & indexes(store)
    write(  # as stores made before have them
        store,
        "CREATE INDEX jobs_due ON jobs (state, due_at)",
        "CREATE INDEX jobs_claim ON jobs (state, urgency, due_at, id)",
        "CREATE INDEX jobs_group ON jobs (gid, state, id)",
        "DROP INDEX jobs_pending_claim",
        "DROP INDEX jobs_pending_group",
        NO_RECORD,
    )
    reopened = open_store(f"sqlite://{store.path}" if isinstance(store, SqliteStore) else store.dsn)
    await reopened.open()
    try:
        assert pending <= indexes(store)
        assert not {"jobs_due", "jobs_claim", "jobs_group"} & indexes(store)
    finally:
        await reopened.close()


async def test_the_claim_and_group_indexes_hold_pending_jobs_only(store: Store) -> None:
    """As the database's catalog defines them: a job that ends leaves them (no row version added there)."""
    if isinstance(store, PostgresStore):
        found = dict(rows(store, "SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE 'jobs_pending%'"))
        assert found == {
            "jobs_pending_claim": "CREATE INDEX jobs_pending_claim ON public.jobs USING btree (urgency, due_at, id) "
            "WHERE (state = 'pending'::text)",
            "jobs_pending_group": "CREATE INDEX jobs_pending_group ON public.jobs USING btree (gid, id) "
            "WHERE (state = 'pending'::text)",
        }
        return
    with closing(sqlite3.connect(store.path)) as db:  # type: ignore[attr-defined]
        found = {name: [(row[2], row[3]) for row in db.execute(f"PRAGMA index_xinfo({name})") if row[5]]
                 for name in ("jobs_pending_claim", "jobs_pending_group")}  # fmt: skip
        partial = {name for _, name, _, _, is_partial in db.execute("PRAGMA index_list(jobs)") if is_partial}
        (claim_sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'jobs_pending_claim'").fetchone()
    assert found == {"jobs_pending_claim": [("urgency", 0), ("due_at", 0), ("id", 0)],
                     "jobs_pending_group": [("gid", 0), ("id", 0)]}  # fmt: skip
    assert {"jobs_pending_claim", "jobs_pending_group"} <= partial
    assert claim_sql.endswith("WHERE state = 'pending'")


async def test_opening_a_store_moves_the_groups_and_messages_of_its_deliveries_into_their_job_rows(
    store: Store,
) -> None:
    """Stores written before kept them in ``delivery_groups`` (without ``ref`` at first): each row moves to its
    job, the table goes, and a second open finds nothing to move."""
    await store.ingest([alert(f"m{n}", **GROUPED) for n in range(3)] + [alert("plain")], "http://am", 0, NOW)
    members = [job_id for (job_id,) in rows(store, "SELECT id FROM jobs WHERE gid IS NOT NULL ORDER BY id")]
    (gid,) = {g for (g,) in rows(store, "SELECT DISTINCT gid FROM jobs WHERE gid IS NOT NULL")}
    write(  # the shape of such a store: the group, message and its id in a table of their own
        store,
        "CREATE TABLE delivery_groups (job_id BIGINT PRIMARY KEY, gid TEXT NOT NULL, batch BIGINT)",
        "INSERT INTO delivery_groups (job_id, gid, batch) SELECT id, gid, NULL FROM jobs WHERE gid IS NOT NULL",
        "ALTER TABLE delivery_groups ADD COLUMN ref TEXT",
        f"UPDATE delivery_groups SET batch = {members[0]}, ref = 'ts-1' WHERE job_id IN ({members[0]}, {members[1]})",
        "DROP INDEX jobs_batch",
        "ALTER TABLE jobs DROP COLUMN batch",
        "ALTER TABLE jobs DROP COLUMN ref",
        "UPDATE jobs SET gid = NULL",
        "ALTER TABLE group_holds DROP COLUMN size",
        NO_RECORD,
    )
    expected = [
        (members[0], gid, members[0], "ts-1"),
        (members[1], gid, members[0], "ts-1"),
        (members[2], gid, None, None),
    ]
    for _ in range(2):
        reopened = open_store(f"sqlite://{store.path}" if isinstance(store, SqliteStore) else store.dsn)
        await reopened.open()
        try:
            assert rows(store, "SELECT id, gid, batch, ref FROM jobs WHERE gid IS NOT NULL ORDER BY id") == expected
            assert rows(store, "SELECT count(*) FROM jobs WHERE gid IS NULL") == [(1,)]  # the plain delivery
            assert tables(store) >= {"jobs", "incidents"}
            assert "delivery_groups" not in tables(store)
            assert "jobs_batch" in indexes(store)
            assert rows(store, "SELECT count(size) FROM group_holds") == [(0,)]  # the column a hold's size needs
            assert [j.id for j in await reopened.batch_jobs(members[0])] == members[:2]
        finally:
            await reopened.close()


def tables(store: Store) -> set[str]:
    """The store's table names, as the database lists them."""
    return catalog(store, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
                   "SELECT name FROM sqlite_master WHERE type = 'table'")  # fmt: skip
