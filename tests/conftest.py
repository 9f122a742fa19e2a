"""Shared fixtures: real servers on free loopback ports, each in its own temp directory."""

from __future__ import annotations

import logging
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


@pytest.fixture(autouse=True)
def _root_log_level() -> Iterator[None]:
    """Entry points called in-process (``main([... "--log.level", "error"])``) set the root logger's level;
    in random order, a later test's ``caplog`` would then miss the warnings it checks."""
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)
