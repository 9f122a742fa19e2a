"""The store tests run once on SQLite and once on PostgreSQL (a fresh database per test)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opsloop.receiver.store import Store, open_store
from opsloop.testsupport.servers import PostgresServer

_databases = itertools.count()


def fresh_postgres_url(server: PostgresServer, prefix: str) -> str:
    name = f"{prefix}_{next(_databases)}"
    server.psql(f"CREATE DATABASE {name}", database="postgres")
    return server.dsn.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite://{tmp_path / 'receiver.db'}"
    else:
        url = fresh_postgres_url(request.getfixturevalue("postgres_server"), "store")
    opened = open_store(url)
    await opened.open()
    yield opened
    await opened.close()
