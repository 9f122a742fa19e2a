"""PostgreSQL specifics: replicas creating the schema together, and an unreachable server."""

from __future__ import annotations

import asyncio
import time

import pytest
from opsloop.receiver.store import StoreUnavailable, open_store
from opsloop.testsupport.servers import PostgresServer, free_port

from tests.receiver.store.conftest import fresh_postgres_url


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
