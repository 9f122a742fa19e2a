"""PostgreSQL store, for several receiver replicas sharing one database.

Replicas share work through row locks (``FOR UPDATE SKIP LOCKED`` when claiming jobs) and serialise plan
gating (caps, cooldown, circuit breaker) with a transaction-level advisory lock, so a plan runs once.
The pools connect lazily: the receiver starts (and answers 503) while PostgreSQL is down.

Operations run in threads on blocking connections, as SQLite's do in its writer thread: a round trip
costs about half the CPU of an asyncio one (psycopg's C wait loop, no event-loop hops), and the event
loop only parses requests and hands work over. Webhooks are group-committed (``batching``): concurrent
ingests share one transaction and one WAL flush, written by threads and connections of their own so
no worker step can hold them up, on libpq's pipeline itself (``pipeline``: psycopg's cursors cost that
one writer thread three to four times the CPU); their alerts go in one global (fingerprint, startsAt)
order, so batches of different writers or replicas lock incidents in the same order and cannot
deadlock, and two webhooks for one alert keep their arrival order.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg
from opsloop.receiver.domain import RoutedAlert
from opsloop.receiver.store.batching import GroupCommit
from opsloop.receiver.store.driver import Op, Result, Stmt, StoreUnavailable, T, drive, drive_together
from opsloop.receiver.store.ops import Store
from opsloop.receiver.store.pipeline import Pipeline
from opsloop.receiver.store.schema import Dialect
from psycopg_pool import ConnectionPool, PoolTimeout

log = logging.getLogger(__name__)

POSTGRES = Dialect(
    id_column="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    real="DOUBLE PRECISION",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    row_lock=" FOR UPDATE",
    gate_lock="SELECT pg_advisory_xact_lock(?)",
    contains="strpos({column}, ?) > 0",
    json_field="({column}::json ->> '{name}')",
    add_column="ADD COLUMN IF NOT EXISTS",
)
SCHEMA_LOCK = 0x6F70736D


@dataclass(frozen=True)
class Webhook:
    alerts: Sequence[RoutedAlert]
    external_url: str
    truncated: int
    now: float


class Connections:
    """A pool of blocking connections and as many threads to use them: a thread never waits for one."""

    def __init__(self, dsn: str, name: str, min_size: int, max_size: int, timeout: float) -> None:
        self.pool = ConnectionPool(
            dsn, min_size=min_size, max_size=max_size, timeout=timeout, open=False, name=name,
            # Acknowledged means committed to the WAL on disk, whatever the server's default.
            kwargs={"connect_timeout": max(1, int(timeout)), "options": "-c synchronous_commit=on"},
        )  # fmt: skip
        self._threads = ThreadPoolExecutor(max_workers=max_size, thread_name_prefix=name)

    def open(self) -> None:
        self.pool.open(wait=False)

    async def run(self, work: Callable[[psycopg.Connection[tuple[object, ...]]], T]) -> T:
        """``work(connection)`` in a thread; StoreUnavailable when PostgreSQL cannot be reached."""
        try:
            done = asyncio.get_running_loop().run_in_executor(self._threads, self._with_connection, work)
        except RuntimeError as exc:  # the threads were shut down
            raise StoreUnavailable("the store is closed") from exc
        return await done

    def _with_connection(self, work: Callable[[psycopg.Connection[tuple[object, ...]]], T]) -> T:
        try:
            with self.pool.connection() as conn:
                return work(conn)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(f"postgresql: {exc}") from exc

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        self._threads.shutdown(wait=True)  # operations in flight finish (and commit) first
        self.pool.close()


class PostgresStore(Store):
    dialect = POSTGRES

    def __init__(self, dsn: str, max_connections: int = 10, timeout: float = 3.0, ingest_writers: int = 1) -> None:
        self.dsn = dsn
        self._connections = Connections(dsn, "postgres-store", 1, max_connections, timeout)
        # The webhook writers have connections of their own: worker steps (each holding a connection while
        # it waits for a row lock, such as a busy destination's send slot) never delay an acknowledgement.
        self._ingest_connections = Connections(dsn, "postgres-ingest", ingest_writers, ingest_writers, timeout)
        self._schema_ready = False
        # One writer: while its batch waits for the WAL flush, the next batch fills. Measured at 32
        # connections, a second writer only adds flushes that compete with it and with the worker's.
        self._webhooks = GroupCommit[Webhook, int](self._ingest_batch, writers=ingest_writers)

    async def open(self) -> None:
        self._connections.open()
        self._ingest_connections.open()
        try:
            await self._ensure_schema()
        except StoreUnavailable as exc:
            log.warning("store not reachable yet", extra={"store": "postgresql", "error": str(exc)})

    async def close(self) -> None:
        await self._webhooks.drain()
        await self._ingest_connections.close()
        await self._connections.close()

    async def ingest(self, alerts: Sequence[RoutedAlert], external_url: str, truncated: int, now: float) -> int:
        """As ``Store.ingest``, group-committed with concurrent webhooks."""
        return await self._webhooks.submit(Webhook(alerts, external_url, truncated, now))

    async def _ingest_batch(self, batch: Sequence[Webhook]) -> list[int | BaseException]:
        await self._ensure_schema()
        try:
            await self._ingest_connections.run(lambda conn: self._ingest_all(conn, batch))
        except StoreUnavailable as exc:
            return [exc] * len(batch)
        except Exception as exc:
            if len(batch) == 1:
                return [exc]
            # One webhook the database refuses must not fail the others: each again, alone.
            log.warning("batched ingest failed, writing its webhooks one by one", extra={"error": str(exc)})
            return [await self._ingest_alone(webhook) for webhook in batch]
        return [len(webhook.alerts) for webhook in batch]

    async def _ingest_alone(self, webhook: Webhook) -> int | BaseException:
        try:
            await self._ingest_connections.run(lambda conn: self._ingest_all(conn, [webhook]))
        except Exception as exc:
            return exc
        return len(webhook.alerts)

    def _ingest_all(self, conn: psycopg.Connection[tuple[object, ...]], batch: Sequence[Webhook]) -> None:
        """Write a batch's alerts in one transaction (``Pipeline``), the alerts of one step side by side
        (``drive_together``: each step's statements go out together, then their results are read).

        Step n holds each alert's n-th occurrence in the batch, in (fingerprint, startsAt) order: within a
        step every alert is a different incident (disjoint rows), one alert's webhooks keep their arrival
        order across steps, and every incident is locked in the first step, in one order for all writers.
        """
        seen: dict[tuple[str, str], int] = {}
        steps: list[list[tuple[RoutedAlert, Webhook]]] = []
        for webhook in batch:
            for routed in webhook.alerts:
                key = (routed.alert.fingerprint, routed.alert.starts_at)
                n = seen[key] = seen.get(key, -1) + 1
                if n == len(steps):
                    steps.append([])
                steps[n].append((routed, webhook))
        with Pipeline(conn) as pipeline:
            for step in steps:
                step.sort(key=lambda pair: (pair[0].alert.fingerprint, pair[0].alert.starts_at))
                ops = [self._ingest([routed], hook.external_url, hook.truncated, hook.now) for routed, hook in step]
                drive_together(ops, lambda stmts: pipeline.run([Stmt(stmt.sql, _params(stmt)) for stmt in stmts]))

    async def _ensure_schema(self) -> None:
        """Create or upgrade the schema, unless it is already the one these statements make.

        The statements are idempotent, but not free: ``ALTER TABLE ... ADD COLUMN IF NOT EXISTS`` takes
        the table's exclusive lock and ``CREATE INDEX IF NOT EXISTS`` its share lock before finding there
        is nothing to do. A replica (or one of a receiver's processes) starting while others acknowledge
        webhooks would make them wait, and deadlock with them. So a store records which statements made
        its schema (``opsloop_schema``: their digest), and a start that finds them there runs none.
        """
        if self._schema_ready:
            return
        statements = self.schema()
        version = hashlib.sha256("\n".join(statements).encode()).hexdigest()

        def create() -> Op[None]:
            yield Stmt("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK,))  # replicas start together
            found = yield Stmt("SELECT to_regclass('opsloop_schema') IS NOT NULL")
            if found.rows[0][0]:
                made = yield Stmt("SELECT version FROM opsloop_schema")
                if made.rows == [(version,)]:
                    return
            for statement in statements:
                yield Stmt(statement)
            yield Stmt("CREATE TABLE IF NOT EXISTS opsloop_schema (version TEXT NOT NULL)")
            yield Stmt("DELETE FROM opsloop_schema")
            yield Stmt("INSERT INTO opsloop_schema (version) VALUES (?)", (version,))

        await self._connections.run(lambda conn: _transaction(conn, create()))
        self._schema_ready = True
        log.info("store opened", extra={"store": "postgresql"})

    async def _run(self, op: Op[T]) -> T:
        await self._ensure_schema()
        return await self._connections.run(lambda conn: _transaction(conn, op))


def _transaction(conn: psycopg.Connection[tuple[object, ...]], op: Op[T]) -> T:
    with conn.transaction(), conn.cursor() as cursor:

        def execute(stmt: Stmt) -> Result:
            cursor.execute(_sql(stmt.sql), _params(stmt))
            return Result(cursor.fetchall() if cursor.description else [], cursor.rowcount)

        return drive(op, execute)


def _sql(sql: str) -> str:
    return sql.replace("?", "%s")


def _params(stmt: Stmt) -> tuple[object, ...]:
    return tuple(map(_no_nul, stmt.params))


def _no_nul(value: object) -> object:
    """Drop NUL characters from text: PostgreSQL text cannot hold them and would refuse the whole write
    (psycopg DataError), losing an action's result or a webhook over one byte of a label or a URL."""
    return value.replace("\x00", "") if isinstance(value, str) else value
