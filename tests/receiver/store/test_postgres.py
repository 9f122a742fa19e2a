"""PostgreSQL specifics: replicas creating the schema together, the dialect's SQL, durable commits,
batches of webhooks (one refused, alike statements, the same alert twice), NUL in text, closing, an
unreachable server, webhooks that never wait for a connection held by other work, and grouped deliveries
written in one row version."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import threading
import time

import psycopg
import pytest
from opsloop.receiver.store import IncidentFilter, Op, Stmt, StoreUnavailable, open_store
from opsloop.receiver.store.postgres import PostgresStore
from opsloop.testsupport.servers import PostgresServer, free_port

from tests.receiver.store.conftest import fresh_postgres_url
from tests.receiver.store.test_ops import NOW, OPEN_GATE, alert, claim_plan, skipped
from tests.receiver.store.test_ops_rows import labelled


def store_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The store's own log records: psycopg and its pool log too (an aborted pipeline, a failed connect),
    depending on timing."""
    return [record for record in caplog.records if record.name == "opsloop.receiver.store.postgres"]


async def test_replicas_create_the_schema_together(postgres_server: PostgresServer) -> None:
    url = fresh_postgres_url(postgres_server, "schema")
    stores = [open_store(url) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    assert [await s.pauses() for s in stores] == [{}, {}, {}]
    for store in stores:
        await store.close()


async def test_a_store_opening_beside_busy_writers_waits_for_none_of_them(postgres_server: PostgresServer) -> None:
    """A replica (or a receiver's process) that starts while others write must not take a table lock that
    waits for their transactions: on a store whose schema is current it runs no DDL at all."""
    url = fresh_postgres_url(postgres_server, "busy")
    first = open_store(url)
    await first.open()
    await first.ping()
    with psycopg.connect(url, autocommit=True) as writer:
        writer.execute("BEGIN")
        writer.execute("LOCK TABLE incidents, jobs, group_holds IN ROW EXCLUSIVE MODE")  # what writers hold
        second = open_store(url)
        await second.open()
        try:
            await asyncio.wait_for(second.ping(), 10)
        finally:
            writer.execute("ROLLBACK")
            await second.close()
    await first.close()


async def test_a_schema_other_statements_made_is_brought_up_to_date(postgres_server: PostgresServer) -> None:
    """A store made by another version of the statements (or before they were recorded) runs them again."""
    url = fresh_postgres_url(postgres_server, "upgrade")

    def indexes() -> set[str]:
        with psycopg.connect(url) as conn:
            return {row[0] for row in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'jobs'")}

    async def start_and_stop() -> None:
        store = open_store(url)
        await store.open()
        await store.ping()
        await store.close()

    for older in ("UPDATE opsloop_schema SET version = 'older'", "DROP TABLE opsloop_schema"):
        await start_and_stop()
        assert "jobs_pending_group" in indexes()
        with psycopg.connect(url) as conn:
            conn.execute("DROP INDEX jobs_pending_group")
            conn.execute(older)
        await start_and_stop()
        assert "jobs_pending_group" in indexes()
        with psycopg.connect(url) as conn:
            versions = [row[0] for row in conn.execute("SELECT version FROM opsloop_schema")]
        assert len(versions) == 1
        assert re.fullmatch(r"[0-9a-f]{64}", versions[0])


async def test_a_store_not_yet_opened_makes_no_connection(postgres_server: PostgresServer) -> None:
    """The pools connect when the store opens, not when it is built."""
    url = fresh_postgres_url(postgres_server, "unopened")
    store = open_store(url)
    assert isinstance(store, PostgresStore)
    assert store.dsn == url  # what a second connection beside the store connects to
    with pytest.raises(StoreUnavailable, match=r"^postgresql: the pool 'postgres-store' is not open yet"):
        await store.ping()
    await store.close()


async def test_the_postgresql_dialect_is_what_postgresql_runs(postgres_server: PostgresServer) -> None:
    """Each piece of SQL text of the dialect, through the operations that use it, read back by PostgreSQL."""
    url = fresh_postgres_url(postgres_server, "dialect")
    database = url.rsplit("/", 1)[1]
    store = open_store(url)
    await store.open()
    try:
        await store.ingest([alert("plain"), labelled(alert("db", plans=[("fix", {})]), alertname="Db")], "", 0, NOW)
        found = await store.incidents(filter=IncidentFilter(alertname="Db"))  # contains
        assert [v.incident.fingerprint for v in found] == ["db"]
        facts = await store.stats_facts(NOW - 1, NOW + 1)  # json_field
        assert sorted(i.alertname for i in facts.incidents) == ["A", "Db"]
        await store.take_slot(1, "w", "k", 1.0, NOW)  # row_lock
        await store.push_slot("k", NOW + 9)
        job = await claim_plan(store, NOW)  # skip_locked
        assert await store.gate(job, "w", OPEN_GATE, NOW, skipped) is None  # gate_lock
        slots = postgres_server.psql("SELECT key, next_at, last_at FROM send_slots", database)
        assert slots.split() == [f"k|{NOW + 9:.0f}|{NOW:.0f}"]
        columns = postgres_server.psql(
            "SELECT column_name, data_type, is_identity, identity_generation FROM information_schema.columns "
            "WHERE table_name = 'incidents' AND column_name IN ('id', 'received_at') ORDER BY column_name",
            database,
        )  # id_column, real
        assert columns.splitlines() == ["id|bigint|YES|ALWAYS", "received_at|double precision|NO|"]
    finally:
        await store.close()


def setting(name: str) -> Op[tuple[str, str]]:
    """A setting as the store's own connection sees it, and the thread the statement was sent from."""
    found = yield Stmt("SELECT setting FROM pg_settings WHERE name = ?", (name,))
    return found.rows[0][0], threading.current_thread().name


async def test_commits_are_durable_whatever_the_databases_default(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = fresh_postgres_url(postgres_server, "durable")
    postgres_server.psql(f"ALTER DATABASE {url.rsplit('/', 1)[1]} SET synchronous_commit = off", "postgres")
    with psycopg.connect(url) as conn:  # what any other connection to this database gets
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("off",)
    store = open_store(url)
    assert isinstance(store, PostgresStore)
    with caplog.at_level(logging.INFO, "opsloop.receiver.store.postgres"):
        await store.open()
        for _ in range(3):
            value, thread = await store._run(setting("synchronous_commit"))
            assert (value, thread.rsplit("_", 1)[0]) == ("on", "postgres-store")
        await store.ingest([alert("fp-durable")], "", 0, NOW)
    await store.close()
    # the schema is created once, by the first operation (opening), and not again by the ones after it
    assert [(r.getMessage(), r.store) for r in caplog.records] == [("store opened", "postgresql")]  # type: ignore[attr-defined]


async def test_a_webhook_the_database_refuses_fails_alone_and_the_others_of_its_batch_commit(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = fresh_postgres_url(postgres_server, "refused")
    store = open_store(url)
    await store.open()
    firing = alert("twice")
    resolved = alert("twice", "resolved")
    resolved = dataclasses.replace(resolved, alert=dataclasses.replace(resolved.alert, ends_at="2030-01-01T01:00:00Z"))
    try:
        with caplog.at_level(logging.WARNING, "opsloop.receiver.store.postgres"):
            # one batch: submitted together, while the writer has not started yet
            results = await asyncio.gather(
                store.ingest([alert("b"), alert("a")], "", 0, NOW),
                store.ingest([firing], "", 0, NOW),
                store.ingest([alert("c")], "", 2**40, NOW),  # truncated_alerts is an INTEGER column
                store.ingest([resolved, alert("d")], "", 0, NOW + 1),
                return_exceptions=True,
            )
        assert results[:2] + results[3:] == [2, 1, 2]
        assert isinstance(results[2], psycopg.errors.NumericValueOutOfRange)
        (warning,) = store_records(caplog)
        assert warning.getMessage() == "batched ingest failed, writing its webhooks one by one"
        assert "integer out of range" in warning.error  # type: ignore[attr-defined]
        found = postgres_server.psql(
            "SELECT fingerprint, status FROM incidents ORDER BY fingerprint", url.rsplit("/", 1)[1]
        )
        # the alert sent twice keeps its webhooks' order: resolved last
        assert found.split() == ["a|firing", "b|firing", "d|firing", "twice|resolved"]
        caplog.clear()
        with (
            caplog.at_level(logging.WARNING, "opsloop.receiver.store.postgres"),
            pytest.raises(psycopg.errors.NumericValueOutOfRange),  # alone: its own error, nothing to retry
        ):
            await store.ingest([alert("e")], "", 2**40, NOW)
        assert store_records(caplog) == []
    finally:
        await store.close()


async def test_in_one_batch_statements_alike_go_out_together_and_each_gets_its_own_result(
    postgres_server: PostgresServer,
) -> None:
    """Webhooks of one batch, the same alert in several: each count is its own, each alert written once."""
    url = fresh_postgres_url(postgres_server, "alike")
    store = open_store(url)
    await store.open()
    try:
        windows = {"group_key": "{}:{}", "group_windows": {"slack/oncall": 5.0}}
        results = await asyncio.gather(
            *(store.ingest([alert(f"fp{n}", **windows), alert("same")], "", 0, NOW + n) for n in range(4))
        )
        assert results == [2, 2, 2, 2]
        database = url.rsplit("/", 1)[1]
        found = postgres_server.psql(
            "SELECT i.fingerprint, count(j.id) FROM incidents i JOIN jobs j ON j.incident_id = i.id "
            "GROUP BY i.fingerprint ORDER BY i.fingerprint",
            database,
        )
        assert found.split() == ["fp0|1", "fp1|1", "fp2|1", "fp3|1", "same|1"]
        # every first occurrence in one step, in (fingerprint, startsAt) order: the order of their rows too
        in_order = postgres_server.psql("SELECT fingerprint FROM incidents ORDER BY id", database)
        assert in_order.split() == ["fp0", "fp1", "fp2", "fp3", "same"]
        assert postgres_server.psql(
            "SELECT received_at, updated_at FROM incidents WHERE fingerprint = 'same'", database
        ).split() == [f"{NOW:.0f}|{NOW + 3:.0f}"]
    finally:
        await store.close()


async def test_nul_characters_are_dropped_from_text_not_from_the_write(postgres_server: PostgresServer) -> None:
    url = fresh_postgres_url(postgres_server, "nul")
    store = open_store(url)
    await store.open()
    try:
        nul = alert("n\x00ul")
        nul = dataclasses.replace(nul, alert=dataclasses.replace(nul.alert, generator_url="http://g/\x00x"))
        assert await store.ingest([nul], "http://am\x00", 3, NOW) == 1
        found = postgres_server.psql(
            "SELECT fingerprint, generator_url, external_url, truncated_alerts FROM incidents", url.rsplit("/", 1)[1]
        )
        assert found.split() == ["nul|http://g/x|http://am|3"]
    finally:
        await store.close()


async def test_a_grouped_delivery_is_written_once_naming_its_group(postgres_server: PostgresServer) -> None:
    """A delivery joins its group in the row it is inserted with, not by an update after it (a second row
    version, with new entries in every index of ``jobs``). PostgreSQL's own tuple ids are the oracle: in a
    new table they run (0,1), (0,2), ... only while no row was rewritten."""
    url = fresh_postgres_url(postgres_server, "written_once")
    store = open_store(url)
    await store.open()
    windows = {"group_key": '{}:{alertname="A"}', "group_windows": {"slack/oncall": 5.0}}
    await store.ingest([alert(f"fp{n}", **windows) for n in range(3)], "http://am", 0, NOW)
    await store.close()
    rows = postgres_server.psql("SELECT ctid, gid FROM jobs ORDER BY id", database=url.rsplit("/", 1)[1])
    assert rows.splitlines() == [f'(0,{n})|slack/oncall|firing|{{}}:{{alertname="A"}}' for n in (1, 2, 3)]


async def test_close_lets_operations_in_flight_commit_then_refuses_new_ones(postgres_server: PostgresServer) -> None:
    url = fresh_postgres_url(postgres_server, "closing")
    database = url.rsplit("/", 1)[1]
    store = open_store(url)
    await store.open()

    def slow() -> Op[None]:
        yield Stmt("SELECT pg_sleep(0.5)")
        yield Stmt("INSERT INTO pauses (scope, reason, at) VALUES ('*', 'in flight', 1)")

    running = asyncio.create_task(store._run(slow()))
    sleeping = (
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' AND datname = current_database()"
    )
    for _ in range(100):
        if postgres_server.psql(sleeping, database).strip() == "1":
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the operation never reached the server")
    await store.close()
    assert running.done()  # close returned after it, not before
    await running
    assert postgres_server.psql("SELECT reason FROM pauses", database).splitlines() == ["in flight"]
    with pytest.raises(StoreUnavailable, match=r"^the store is closed$"):
        await store.pauses()
    refused = await asyncio.gather(
        *(store.ingest([alert(f"late{n}")], "", 0, NOW) for n in range(2)), return_exceptions=True
    )
    assert [str(r) for r in refused] == ["the store is closed"] * 2
    assert all(isinstance(r, StoreUnavailable) for r in refused)


async def test_webhooks_are_acknowledged_while_worker_steps_hold_every_connection(
    postgres_server: PostgresServer,
) -> None:
    """Ten operations waiting on a row lock hold all ten connections of the pool (an eleventh waits for one of
    them, not at the server); a webhook still commits."""
    url = fresh_postgres_url(postgres_server, "starved")
    database = url.rsplit("/", 1)[1]
    store = open_store(url)
    await store.open()
    postgres_server.psql("INSERT INTO send_slots (key, next_at, last_at, spacing) VALUES ('k', 0, 0, 1)", database)
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    try:
        async with await psycopg.AsyncConnection.connect(url) as locker:
            async with locker.transaction():
                await locker.execute("SELECT 1 FROM send_slots WHERE key = 'k' FOR UPDATE")
                blocked = [asyncio.create_task(store.push_slot("k", NOW)) for _ in range(11)]
                for _ in range(100):  # until PostgreSQL shows ten waiting for the lock
                    if postgres_server.psql(waiting, database).strip() == "10":
                        break
                    await asyncio.sleep(0.1)
                else:
                    pytest.fail("the ten operations never all waited for the row lock")
                assert await asyncio.wait_for(store.ingest([alert("fp-starved")], "", 0, NOW), 30) == 1
                assert postgres_server.psql(waiting, database).strip() == "10"
                assert not any(task.done() for task in blocked)
            await asyncio.gather(*blocked)
        found = postgres_server.psql("SELECT fingerprint, next_at FROM incidents, send_slots", database)
        assert found.split() == [f"fp-starved|{NOW:.0f}"]
    finally:
        await store.close()


async def test_unreachable_server_is_unavailable_not_a_hang(caplog: pytest.LogCaptureFixture) -> None:
    store = open_store(f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    with caplog.at_level(logging.WARNING, "opsloop.receiver.store.postgres"):
        await store.open()  # starts anyway: webhooks get 503 until the database is back
    (warning,) = store_records(caplog)
    assert (warning.getMessage(), warning.store) == ("store not reachable yet", "postgresql")  # type: ignore[attr-defined]
    assert warning.error.startswith("postgresql: ")  # type: ignore[attr-defined]
    started = time.monotonic()
    # psycopg_pool says how long it waited: the store's 3 s, well inside a webhook client's timeout
    with pytest.raises(StoreUnavailable, match=r"^postgresql: couldn't get a connection after 3\.00 sec$"):
        await store.ping()
    assert time.monotonic() - started < 10
    await store.close()
    # each pool tried to connect meanwhile, and psycopg's warnings say which: operations' or webhooks'
    failed = (re.search(r"error connecting in '([^']+)'", r.getMessage()) for r in caplog.records)
    assert {m[1] for m in failed if m} == {"postgres-store", "postgres-ingest"}
