"""Group commit: concurrent webhooks share PostgreSQL transactions, and lose nothing when the server dies.

PostgreSQL itself is the oracle: rows written by one transaction share their ``xmin``, and what a test
finds in the tables it reads with psql, not through the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass

import psycopg
import pytest
from opsloop.receiver.store import Store, StoreUnavailable, open_store
from opsloop.receiver.store.batching import GroupCommit
from opsloop.testsupport.servers import PostgresServer

from tests.receiver.store.conftest import fresh_postgres_url
from tests.receiver.store.test_ops import NOW, alert


@pytest.fixture(scope="module")
def durable_postgres() -> Iterator[PostgresServer]:
    """fsync and ``synchronous_commit=on``: a commit PostgreSQL acknowledged survives its crash."""
    with PostgresServer(durable=True) as server:
        yield server


def rows(server: PostgresServer, database: str, sql: str) -> list[list[str]]:
    return [line.split("|") for line in server.psql(sql, database=database).splitlines()]


@dataclass
class Database:
    store: Store
    server: PostgresServer
    name: str

    def rows(self, sql: str) -> list[list[str]]:
        return rows(self.server, self.name, sql)


@pytest.fixture
async def db(durable_postgres: PostgresServer) -> AsyncIterator[Database]:
    """A fresh database on the durable server and a PostgreSQL store opened on it."""
    url = fresh_postgres_url(durable_postgres, "batch")
    store = open_store(url)
    await store.open()
    yield Database(store, durable_postgres, url.rsplit("/", 1)[1])
    await store.close()


async def test_group_commit_settles_each_caller_with_its_own_result() -> None:
    batches: list[list[int]] = []

    async def commit(items: Sequence[int]) -> list[int | BaseException]:
        batches.append(list(items))
        await asyncio.sleep(0.01)
        if 13 in items:
            raise RuntimeError("database gone")
        return [ValueError(f"refused {n}") if n % 5 == 0 else n * 10 for n in items]

    group = GroupCommit[int, int](commit, writers=2)
    async with asyncio.timeout(10):  # a writer that died leaves its callers waiting
        results = await asyncio.gather(*(group.submit(n) for n in range(1, 21)), return_exceptions=True)
        await group.drain()
    assert sorted(n for batch in batches for n in batch) == list(range(1, 21))
    assert len(batches) < 20  # callers that arrived while the writers were busy shared a commit
    failed = next(batch for batch in batches if 13 in batch)
    for n, result in zip(range(1, 21), results, strict=True):
        if n in failed:
            assert isinstance(result, RuntimeError), n  # the whole batch failed with its commit
        elif n % 5 == 0:
            assert str(result) == f"refused {n}"
        else:
            assert result == n * 10


@pytest.mark.parametrize("returned", [0, 1, 3])
async def test_a_commit_that_returns_the_wrong_number_of_results_fails_every_caller_of_its_batch(
    returned: int,
) -> None:
    """No caller is left waiting (or given another's result) when a commit breaks one result per item."""
    batches: list[int] = []

    async def commit(items: Sequence[int]) -> list[int | BaseException]:
        batches.append(len(items))
        results = [n * 10 for n in items]
        return (results * 2)[:returned] if len(batches) == 1 else results

    group = GroupCommit[int, int](commit)
    async with asyncio.timeout(10):  # a caller left waiting would hang here
        first = await asyncio.gather(*(group.submit(n) for n in (1, 2)), return_exceptions=True)
        later = await group.submit(3)  # the writer lives on
        await group.drain()
    assert batches == [2, 1]
    assert [type(r) for r in first] == [ValueError] * 2
    assert all(("shorter" if returned < 2 else "longer") in str(r) for r in first)
    assert later == 30


@pytest.mark.parametrize("writers", [None, 2])
async def test_no_more_writers_commit_at_once_than_allowed_and_no_batch_holds_over_256(writers: int | None) -> None:
    sizes: list[int] = []
    running = most = 0

    async def commit(items: Sequence[int]) -> list[int | BaseException]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        sizes.append(len(items))
        await asyncio.sleep(0.01)
        running -= 1
        return [n * 10 for n in items]

    group = GroupCommit[int, int](commit) if writers is None else GroupCommit[int, int](commit, writers=writers)
    async with asyncio.timeout(10):
        for _ in range(2):  # after a quiet moment, writers start again
            assert await asyncio.gather(*(group.submit(n) for n in range(600))) == [n * 10 for n in range(600)]
        await group.drain()
    assert most == (writers or 1)  # one by default
    assert sizes == [256, 256, 88] * 2  # everything queued before the first writer ran, in batches of 256


async def test_a_caller_that_gave_up_leaves_no_error_unretrieved(caplog: pytest.LogCaptureFixture) -> None:
    started, failing = asyncio.Event(), asyncio.Event()

    async def commit(items: Sequence[int]) -> list[int | BaseException]:
        started.set()
        await failing.wait()
        raise RuntimeError("database gone")

    group = GroupCommit[int, int](commit)
    caller = asyncio.create_task(group.submit(1))
    await started.wait()
    caller.cancel()  # the webhook's client hung up; its batch goes on
    with pytest.raises(asyncio.CancelledError):
        await caller
    failing.set()
    await group.drain()
    del caller
    gc.collect()  # an error nobody retrieved is logged when its future is collected
    assert "never retrieved" not in caplog.text


async def test_concurrent_webhooks_share_commits_and_one_alert_is_stored_once(db: Database) -> None:
    same = [db.store.ingest([alert("same")], "http://am", 0, NOW + n) for n in range(20)]
    distinct = [db.store.ingest([alert(f"fp{n:02}")], "http://am", 0, NOW) for n in range(40)]
    assert await asyncio.gather(*same, *distinct) == [1] * 60
    assert db.rows("SELECT count(*) FROM incidents WHERE fingerprint = 'same'") == [["1"]]
    assert db.rows("SELECT count(*) FROM incidents") == [["41"]]
    jobs = db.rows("SELECT i.fingerprint, count(*) FROM jobs j JOIN incidents i ON i.id = j.incident_id GROUP BY 1")
    assert {fp: int(n) for fp, n in jobs} == {"same": 1, **{f"fp{n:02}": 1 for n in range(40)}}
    (transactions,) = db.rows("SELECT count(DISTINCT xmin::text) FROM jobs")
    assert int(transactions[0]) < 20, "60 concurrent webhooks should share a few commits"


async def test_firing_then_resolved_keep_their_order_within_and_across_batches(db: Database) -> None:
    # One batch: the firing webhook arrived first, then its resolution, then a late firing retry.
    await asyncio.gather(
        db.store.ingest([alert("a")], "", 0, NOW),
        db.store.ingest([alert("a", status="resolved"), alert("b")], "", 0, NOW + 1),
        db.store.ingest([alert("a")], "", 0, NOW + 2),
    )
    # Across batches: b resolves later, and a late retry of a's firing changes nothing.
    await db.store.ingest([alert("b", status="resolved")], "", 0, NOW + 3)
    await db.store.ingest([alert("a"), alert("b")], "", 0, NOW + 4)
    assert db.rows("SELECT fingerprint, status FROM incidents ORDER BY 1") == [["a", "resolved"], ["b", "resolved"]]
    deliveries = db.rows(
        "SELECT i.fingerprint, j.notify_kind, j.xmin::text FROM jobs j JOIN incidents i ON i.id = j.incident_id "
        "ORDER BY i.fingerprint, j.id"
    )
    assert [(fp, kind) for fp, kind, _ in deliveries] == [
        ("a", "firing"), ("a", "resolved"), ("b", "firing"), ("b", "resolved"),
    ]  # fmt: skip
    assert deliveries[0][2] == deliveries[1][2], "a's firing and resolved were meant to share one batch"


async def test_one_refused_webhook_does_not_fail_its_batch(db: Database) -> None:
    results = await asyncio.gather(
        db.store.ingest([alert("ok1")], "", 0, NOW),
        db.store.ingest([alert("ok2")], "", 0, NOW),
        db.store.ingest([alert("bad")], "", 2**40, NOW),  # truncated_alerts is an INTEGER column
        db.store.ingest([alert("ok3")], "", 0, NOW),
        return_exceptions=True,
    )
    assert [results[0], results[1], results[3]] == [1, 1, 1]
    assert isinstance(results[2], psycopg.errors.NumericValueOutOfRange)
    assert db.rows("SELECT fingerprint FROM incidents ORDER BY 1") == [["ok1"], ["ok2"], ["ok3"]]


@pytest.mark.slow
async def test_server_killed_mid_commit_loses_nothing_acknowledged() -> None:
    with PostgresServer(durable=True) as server:
        store = open_store(server.dsn)
        await store.open()
        acknowledged: set[str] = set()
        failed: list[BaseException] = []
        numbers = itertools.count()
        enough = asyncio.Event()

        async def client() -> None:
            """Posts webhooks until its first failure (Alertmanager would retry that one later)."""
            for n in numbers:
                if n >= 5000:
                    return
                try:
                    await store.ingest([alert(f"fp{n:05}")], "", 0, NOW)
                except Exception as exc:
                    failed.append(exc)
                    return
                acknowledged.add(f"fp{n:05}")
                if len(acknowledged) >= 300:
                    enough.set()

        async def crash() -> None:
            await enough.wait()
            await asyncio.to_thread(server.kill)  # SIGKILL: commits in flight die with it

        try:
            async with asyncio.timeout(120):
                await asyncio.gather(crash(), *(client() for _ in range(32)))
            assert [type(exc) for exc in failed] == [StoreUnavailable] * 32
            await asyncio.to_thread(server.start)
            stored = {fp for (fp,) in rows(server, server.database, "SELECT fingerprint FROM incidents")}
            assert 300 <= len(acknowledged) < 5000
            assert acknowledged <= stored, f"acknowledged but lost: {sorted(acknowledged - stored)[:5]}"
            # Whatever failed may or may not have been committed; Alertmanager's retry is idempotent. The
            # first retries may meet connections the pool kept from before the crash (each is dropped).
            for _ in range(11):
                with contextlib.suppress(StoreUnavailable):
                    assert await store.ingest([alert("fp00000")], "", 0, NOW) == 1
                    break
            else:
                pytest.fail("the store did not recover after PostgreSQL restarted")
        finally:
            await store.close()
