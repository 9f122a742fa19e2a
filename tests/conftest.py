"""Shared fixtures: real servers on free loopback ports, each in its own temp directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opsloop.testsupport.servers import PostgresServer, RedisServer


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server per test: tests kill, pause and fill it freely."""
    with RedisServer() as server:
        yield server
