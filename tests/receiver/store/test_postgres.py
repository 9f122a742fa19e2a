"""PostgreSQL specifics: replicas creating the schema together, an unreachable server, webhooks that
never wait for a connection held by other work, and grouped deliveries written in one row version."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest
from opsloop.receiver.store import StoreUnavailable, open_store
from opsloop.testsupport.servers import PostgresServer, free_port

from tests.receiver.store.conftest import fresh_postgres_url
from tests.receiver.store.test_ops import NOW, alert


async def test_replicas_create_the_schema_together(postgres_server: PostgresServer) -> None:
    url = fresh_postgres_url(postgres_server, "schema")
    stores = [open_store(url) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    assert [await s.pauses() for s in stores] == [{}, {}, {}]
    for store in stores:
        await store.close()


async def test_unreachable_server_is_unavailable_not_a_hang() -> None:
    store = open_store(f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    await store.open()  # starts anyway: webhooks get 503 until the database is back
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await store.ping()
    assert time.monotonic() - started < 10
    await store.close()


async def test_webhooks_are_acknowledged_while_worker_steps_hold_every_connection(
    postgres_server: PostgresServer,
) -> None:
    """Ten operations waiting on a row lock hold all ten connections of the pool; a webhook still commits."""
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
                blocked = [asyncio.create_task(store.push_slot("k", NOW)) for _ in range(10)]
                for _ in range(100):  # until PostgreSQL shows all ten waiting for the lock
                    if postgres_server.psql(waiting, database).strip() == "10":
                        break
                    await asyncio.sleep(0.1)
                else:
                    pytest.fail("the ten operations never all waited for the row lock")
                assert await asyncio.wait_for(store.ingest([alert("fp-starved")], "", 0, NOW), 30) == 1
                assert not any(task.done() for task in blocked)
            await asyncio.gather(*blocked)
        found = postgres_server.psql("SELECT fingerprint, next_at FROM incidents, send_slots", database)
        assert found.split() == [f"fp-starved|{NOW:.0f}"]
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
