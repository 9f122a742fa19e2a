"""SQLite specifics: WAL with durable commits, data surviving a reopen, group commit in one writer thread,
reads beside it on a read-only connection, and the dialect's SQL as SQLite runs it."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import sqlite3
import threading
from pathlib import Path

import pytest
from opsloop.receiver.domain import Alert, RoutedAlert
from opsloop.receiver.store import IncidentFilter, Op, Stmt, Store, StoreUnavailable, open_store
from opsloop.receiver.store.sqlite import SqliteStore

ALERT = RoutedAlert(Alert("fp", "2030-01-01T00:00:00Z", "firing", {"a": "b"}), notifiers=("slack/x",))


def routed(fingerprint: str) -> RoutedAlert:
    return dataclasses.replace(ALERT, alert=dataclasses.replace(ALERT.alert, fingerprint=fingerprint))


def live_pragmas() -> Op[tuple[str, int]]:
    journal = yield Stmt("PRAGMA journal_mode")
    synchronous = yield Stmt("PRAGMA synchronous")
    return journal.rows[0][0], synchronous.rows[0][0]


async def test_wal_and_full_sync_and_reopen(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "nested" / "twice" / "receiver.db"  # folders made as needed
    store = open_store(f"sqlite://{path}")
    with caplog.at_level(logging.INFO, "opsloop.receiver.store.sqlite"):
        await store.open()
    (opened,) = caplog.records
    assert (opened.getMessage(), opened.store, opened.path) == ("store opened", "sqlite", str(path))  # type: ignore[attr-defined]
    await store.ingest([ALERT], "", 0, 1.0)
    # synchronous is per connection: only the store's own connection can tell (FULL is 2)
    assert await store._run(live_pragmas()) == ("wal", 2)
    await store.close()
    with sqlite3.connect(path) as conn:  # WAL is persistent: the file itself says so
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    reopened = open_store(f"sqlite://{path}")
    await reopened.open()
    (view,) = await reopened.incidents()
    await reopened.close()
    assert (view.incident.fingerprint, [j.target for j in view.jobs]) == ("fp", ["slack/x"])


async def test_unusable_path_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    path = tmp_path / "file" / "receiver.db"
    store = open_store(f"sqlite://{path}")
    with pytest.raises(
        StoreUnavailable, match=rf"^cannot open {re.escape(str(path))}: .*'{re.escape(str(path.parent))}'$"
    ):
        await store.open()
    await store.close()


def test_unknown_scheme_is_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported store URL mysql://"):
        open_store("mysql://localhost/x")


async def test_concurrent_operations_share_commits_but_fail_alone(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path / 'receiver.db'}")
    await store.open()

    def broken() -> Op[None]:
        yield Stmt("INSERT INTO pauses (scope, reason, at) VALUES ('*', 'x', 1)")
        raise ValueError("a bug in one operation")

    alerts = [routed(f"fp{n}") for n in range(50)]
    results = await asyncio.gather(
        *(store.ingest([a], "", 0, 1.0) for a in alerts), store._run(broken()), return_exceptions=True
    )
    assert results[:50] == [1] * 50
    assert isinstance(results[50], ValueError)
    assert len(await store.incidents(limit=100)) == 50
    assert await store.pauses() == {}  # the broken operation's write was rolled back alone
    await store.close()


async def test_a_closed_connection_fails_every_waiter_instead_of_hanging(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path / 'receiver.db'}")
    await store.open()
    assert isinstance(store, SqliteStore)
    conn = store._conn
    assert conn is not None
    # Closed underneath the store: sqlite3 raises ProgrammingError, not OperationalError.
    await asyncio.get_running_loop().run_in_executor(store._executor, conn.close)
    async with asyncio.timeout(5):
        results = await asyncio.gather(
            *(store.ingest([routed(f"fp{n}")], "", 0, 1.0) for n in range(5)),
            store.pauses(),
            return_exceptions=True,
        )
    assert all(isinstance(r, StoreUnavailable) for r in results), results
    assert "closed database" in str(results[0])
    await store.close()


async def open_and_ingest(store: Store) -> None:
    await store.open()
    await store.ingest([routed("new")], "", 0, 2.0)


async def test_a_corrupt_database_file_fails_promptly_instead_of_hanging(tmp_path: Path) -> None:
    path = tmp_path / "receiver.db"
    store = open_store(f"sqlite://{path}")
    await store.open()
    await store.ingest([ALERT], "", 0, 1.0)
    await store.close()
    with path.open("r+b") as db:  # keep the header, overwrite every page after the first
        db.seek(4096)
        db.write(b"\xa5" * (path.stat().st_size - 4096))
    corrupt = open_store(f"sqlite://{path}")
    try:
        async with asyncio.timeout(5):
            # Opening reads the schema, which may itself sit on an overwritten page: either step may fail.
            with pytest.raises(StoreUnavailable, match="malformed"):
                await open_and_ingest(corrupt)
    finally:
        await corrupt.close()


async def test_a_store_from_before_job_urgency_and_group_columns_gains_them_on_open(tmp_path: Path) -> None:
    path = tmp_path / "receiver.db"
    store = open_store(f"sqlite://{path}")
    await store.open()
    grouped = {"group_key": "{}:{}", "group_windows": {"slack/x": 0.0}}
    page = dataclasses.replace(ALERT.alert, fingerprint="page", labels={"severity": "critical"})
    members = [dataclasses.replace(routed(f"m{n}"), **grouped) for n in range(3)]
    await store.ingest([*members, dataclasses.replace(ALERT, alert=page)], "", 0, 1.0)
    await store.close()
    with sqlite3.connect(path) as conn:  # the jobs table as stores wrote it before these columns existed
        for statement in ("DROP INDEX jobs_pending_claim", "DROP INDEX jobs_pending_group", "DROP INDEX jobs_batch",
                          "CREATE TABLE delivery_groups (job_id BIGINT PRIMARY KEY, gid TEXT NOT NULL, batch BIGINT)",
                          "INSERT INTO delivery_groups SELECT id, gid, NULL FROM jobs WHERE gid IS NOT NULL",
                          "ALTER TABLE jobs DROP COLUMN urgency", "ALTER TABLE jobs DROP COLUMN gid",
                          "ALTER TABLE jobs DROP COLUMN batch", "ALTER TABLE jobs DROP COLUMN ref"):  # fmt: skip
            conn.execute(statement)
    for _ in range(2):  # opening again finds the columns there
        reopened = open_store(f"sqlite://{path}")
        await reopened.open()
        with sqlite3.connect(path) as conn:
            urgency = dict(
                conn.execute("SELECT i.fingerprint, j.urgency FROM jobs j JOIN incidents i ON i.id = j.incident_id")
            )
        assert urgency == {"page": 1, "m0": 3, "m1": 3, "m2": 3}
        await reopened.close()
    reopened = open_store(f"sqlite://{path}")
    await reopened.open()
    (first,) = await reopened.claim("w", 1, 30, 2.0)
    assert first.incident.fingerprint == "page"  # due with the others, and first
    (member,) = await reopened.claim("w", 8, 30, 2.0)  # one member per group
    assert (member.incident.fingerprint, member.group) == ("m0", "slack/x|firing|{}:{}")
    group = await reopened.take_group(member, "w", 32.0, 2.0)
    assert group is not None
    assert [j.incident.fingerprint for j in group] == ["m0", "m1", "m2"]
    await reopened.close()


def thread_name() -> Op[str]:
    yield Stmt("SELECT 1")
    return threading.current_thread().name


def statement(sql: str) -> Op[None]:
    yield Stmt(sql)


def holding(started: threading.Event, release: threading.Event) -> Op[str]:
    """Holds the thread that runs it (the writer or the reader) until ``release``."""
    yield Stmt("SELECT 1")
    started.set()
    assert release.wait(10)
    return threading.current_thread().name


async def test_the_sqlite_dialect_is_what_sqlite_runs(sqlite_store: SqliteStore, tmp_path: Path) -> None:
    """Each piece of SQL text of the dialect, through the operations that use it, read back by SQLite itself."""
    labelled = dataclasses.replace(ALERT.alert, fingerprint="db", labels={"alertname": "Db", "severity": "critical"})
    await sqlite_store.ingest([ALERT, dataclasses.replace(ALERT, alert=labelled)], "", 0, 1.0)
    found = await sqlite_store.incidents(filter=IncidentFilter(alertname="Db"))  # contains
    assert [v.incident.labels for v in found] == [{"alertname": "Db", "severity": "critical"}]
    facts = await sqlite_store.stats_facts(0.0, 2.0)  # json_field
    assert sorted(i.alertname for i in facts.incidents) == ["", "Db"]
    await sqlite_store.take_slot(1, "w", "k", 1.0, 1.0)  # row_lock
    await sqlite_store.push_slot("k", 9.0)
    (first,) = await sqlite_store.claim("w", 1, 30, 1.0)  # skip_locked
    assert first.incident.labels["severity"] == "critical"
    with sqlite3.connect(tmp_path / "receiver.db") as conn:
        assert conn.execute("SELECT key, next_at, last_at FROM send_slots").fetchall() == [("k", 9.0, 1.0)]
        columns = {row[1]: (row[2], row[5]) for row in conn.execute("PRAGMA table_info(incidents)")}
    assert (columns["id"], columns["received_at"]) == (("INTEGER", 1), ("REAL", 0))  # id_column, real


async def test_writes_run_in_the_writer_thread_and_reads_beside_it(sqlite_store: SqliteStore) -> None:
    """A read is not held up by the writer: it runs on the reader connection in a thread of its own."""
    started, release = threading.Event(), threading.Event()
    writing = asyncio.create_task(sqlite_store._run(holding(started, release)))
    assert await asyncio.to_thread(started.wait, 10)
    try:
        async with asyncio.timeout(5):
            reader = await sqlite_store._read(thread_name())
    finally:
        release.set()
    assert (await writing, reader) == ("sqlite-store_0", "sqlite-reader_0")
    with pytest.raises(StoreUnavailable, match=r"^sqlite: attempt to write a readonly database$"):  # query_only
        await sqlite_store._read(statement("INSERT INTO pauses (scope, reason, at) VALUES ('*', 'x', 1)"))


async def test_one_reader_runs_one_read_at_a_time(sqlite_store: SqliteStore) -> None:
    """The reader connection has one thread: a second read waits for the first instead of sharing it."""
    started, release = threading.Event(), threading.Event()
    first = asyncio.create_task(sqlite_store._read(holding(started, release)))
    assert await asyncio.to_thread(started.wait, 10)
    second = asyncio.create_task(sqlite_store._read(thread_name()))
    await asyncio.sleep(0)  # handed to the reader's thread pool, where it waits for the first
    release.set()
    assert await asyncio.gather(first, second) == ["sqlite-reader_0", "sqlite-reader_0"]


async def test_operations_queued_while_the_writer_is_busy_commit_together_after_it(
    sqlite_store: SqliteStore, tmp_path: Path
) -> None:
    """One writer thread: a group queued meanwhile waits for the running one instead of sharing its
    connection (where its BEGIN would fail: a transaction is already open)."""
    started, release = threading.Event(), threading.Event()
    writing = asyncio.create_task(sqlite_store._run(holding(started, release)))
    assert await asyncio.to_thread(started.wait, 10)
    queued = [asyncio.create_task(sqlite_store.ingest([routed(f"q{n}")], "", 0, 1.0)) for n in range(3)]
    await asyncio.sleep(0.05)  # queued, and the next group submitted to the writer's pool
    release.set()
    assert await asyncio.gather(writing, *queued) == ["sqlite-store_0", 1, 1, 1]
    with sqlite3.connect(tmp_path / "receiver.db") as conn:
        assert conn.execute("SELECT fingerprint FROM incidents ORDER BY id").fetchall() == [("q0",), ("q1",), ("q2",)]


async def test_a_database_error_fails_its_whole_group_and_the_next_group_commits(
    sqlite_store: SqliteStore, tmp_path: Path
) -> None:
    started, release = threading.Event(), threading.Event()
    writing = asyncio.create_task(sqlite_store._run(holding(started, release)))
    assert await asyncio.to_thread(started.wait, 10)
    together = [
        asyncio.create_task(sqlite_store.ingest([routed("lost")], "", 0, 1.0)),
        asyncio.create_task(sqlite_store._run(statement("SELECT * FROM nowhere"))),
    ]
    await asyncio.sleep(0.05)
    release.set()
    await writing
    results = await asyncio.gather(*together, return_exceptions=True)
    assert [str(r) for r in results] == ["sqlite: no such table: nowhere"] * 2
    assert all(isinstance(r, StoreUnavailable) for r in results)
    # rolled back: the next group starts a transaction of its own and commits
    assert await sqlite_store.ingest([routed("kept")], "", 0, 1.0) == 1
    with sqlite3.connect(tmp_path / "receiver.db") as conn:
        assert conn.execute("SELECT fingerprint FROM incidents").fetchall() == [("kept",)]


async def test_a_cancelled_waiter_does_not_hold_up_the_others_of_its_group(sqlite_store: SqliteStore) -> None:
    started, release = threading.Event(), threading.Event()
    writing = asyncio.create_task(sqlite_store._run(holding(started, release)))
    assert await asyncio.to_thread(started.wait, 10)
    queued = [asyncio.create_task(sqlite_store.ingest([routed(f"c{n}")], "", 0, 1.0)) for n in range(3)]
    await asyncio.sleep(0.05)
    queued[0].cancel()
    release.set()
    await writing
    async with asyncio.timeout(5):
        assert await asyncio.gather(*queued[1:]) == [1, 1]
    # the cancelled one was queued already: it is written, only nobody waits for its answer
    assert sorted(v.incident.fingerprint for v in await sqlite_store.incidents()) == ["c0", "c1", "c2"]


async def test_a_store_not_open_or_closed_says_so(tmp_path: Path) -> None:
    path = tmp_path / "receiver.db"
    store = SqliteStore(path)
    for attempt in (store.pauses(), store._read(thread_name())):
        with pytest.raises(StoreUnavailable, match=r"^the store is not open$"):
            await attempt
    await store.open()
    assert path.with_name("receiver.db-wal").exists()
    await store.close()
    # the last connection closed (the reader's too): SQLite checkpointed the log into the file and removed it
    assert not path.with_name("receiver.db-wal").exists()
    async with asyncio.timeout(5):
        for _ in range(2):  # the second is refused too, not left waiting for a writer that never runs
            for attempt in (store.pauses(), store._read(thread_name())):
                with pytest.raises(StoreUnavailable, match=r"^the store is closed$"):
                    await attempt
    await store.close()  # closing twice is harmless
