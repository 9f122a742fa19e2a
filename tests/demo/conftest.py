"""Fixtures for the workload tests: a database of their own and a factory that always stops workloads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import psycopg
import pytest
from opsloop.demo.workload import Workload
from opsloop.testsupport.servers import PostgresServer, RedisServer
from redis.asyncio import Redis


@pytest.fixture(scope="module")
def workload_database(postgres_server: PostgresServer) -> Iterator[str]:
    """A database apart from other tests' (which may create their own ``jobs`` table)."""
    dsn = postgres_server.create_database("workload")
    yield dsn
    postgres_server.psql(f"DROP DATABASE IF EXISTS {dsn.rsplit('/', 1)[1]} WITH (FORCE)", database="postgres")


@pytest.fixture
async def pg(workload_database: str) -> AsyncIterator[psycopg.AsyncConnection]:
    """An autocommit connection to a database without the demo tables: each workload creates them anew."""
    async with await psycopg.AsyncConnection.connect(workload_database, autocommit=True) as conn:
        await conn.execute("drop table if exists jobs, orders")
        yield conn


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def make_workload(
    redis_server: RedisServer, workload_database: str, pg: psycopg.AsyncConnection
) -> AsyncIterator[Callable[..., Workload]]:
    """Build unstarted workloads on the test's Redis and database; every one is stopped afterwards."""
    made: list[Workload] = []

    def make(**options: object) -> Workload:
        settings: dict[str, Any] = {"retry_interval": 0.1, "seed": 1, **options}
        workload = Workload(redis_server.url, workload_database, **settings)
        made.append(workload)
        return workload

    yield make
    for workload in made:
        await workload.stop()
