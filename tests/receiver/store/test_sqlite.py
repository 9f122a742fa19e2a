"""SQLite specifics: WAL with durable commits, data surviving a reopen, group commit."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from pathlib import Path

import pytest
from opsloop.receiver.domain import Alert, RoutedAlert
from opsloop.receiver.store import Op, Stmt, Store, StoreUnavailable, open_store
from opsloop.receiver.store.sqlite import SqliteStore

ALERT = RoutedAlert(Alert("fp", "2030-01-01T00:00:00Z", "firing", {"a": "b"}), notifiers=("slack/x",))


def routed(fingerprint: str) -> RoutedAlert:
    return dataclasses.replace(ALERT, alert=dataclasses.replace(ALERT.alert, fingerprint=fingerprint))


def live_pragmas() -> Op[tuple[str, int]]:
    journal = yield Stmt("PRAGMA journal_mode")
    synchronous = yield Stmt("PRAGMA synchronous")
    return journal.rows[0][0], synchronous.rows[0][0]


async def test_wal_and_full_sync_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "receiver.db"
    store = open_store(f"sqlite://{path}")
    await store.open()
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
    store = open_store(f"sqlite://{tmp_path / 'file' / 'receiver.db'}")
    with pytest.raises(StoreUnavailable, match="cannot open"):
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
        for statement in ("DROP INDEX jobs_claim", "DROP INDEX jobs_group", "ALTER TABLE jobs DROP COLUMN urgency",
                          "ALTER TABLE jobs DROP COLUMN gid"):  # fmt: skip
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
