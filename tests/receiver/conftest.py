"""Fixtures for the receiver tests: an HTTP session, receivers on real ports, Slack and SMTP sinks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from opsloop.receiver.store import SqliteStore
from opsloop.testsupport.sinks import SlackSink, SmtpSink

from tests.receiver.harness import Receiver, start_receiver


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def receivers(http: aiohttp.ClientSession) -> AsyncIterator[Callable[[Path], Awaitable[Receiver]]]:
    """Start receivers from config files; each is stopped at the end unless the test stopped it."""
    started: list[Receiver] = []

    async def start(config: Path) -> Receiver:
        receiver = await start_receiver(config, http)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        await receiver.stop()


@pytest.fixture
async def slack() -> AsyncIterator[SlackSink]:
    async with SlackSink() as sink:
        yield sink


@pytest.fixture
def mailbox() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """An open SQLite store of the test's own, closed after it."""
    store = SqliteStore(tmp_path / "receiver.db")
    await store.open()
    yield store
    await store.close()
