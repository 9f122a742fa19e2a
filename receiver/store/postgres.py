"""PostgreSQL store, for several receiver replicas sharing one database.

Replicas share work through row locks (``FOR UPDATE SKIP LOCKED`` when claiming jobs) and serialise plan
gating (caps, cooldown, circuit breaker) with a transaction-level advisory lock, so a plan runs once.
The pool connects lazily: the receiver starts (and answers 503) while PostgreSQL is down.

Webhooks are group-committed (``batching``): concurrent ingests share one transaction and one WAL flush,
their alerts written in one global (fingerprint, startsAt) order, so batches of different writers or
replicas lock incidents in the same order and cannot deadlock, and two webhooks for one alert keep
their arrival order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import psycopg
from opsloop.receiver.domain import RoutedAlert
from opsloop.receiver.store.batching import GroupCommit
from opsloop.receiver.store.driver import Op, Result, Stmt, StoreUnavailable, drive_async, drive_together
from opsloop.receiver.store.ops import Store
from opsloop.receiver.store.schema import Dialect
from psycopg_pool import AsyncConnectionPool, PoolTimeout

T = TypeVar("T")
log = logging.getLogger(__name__)

POSTGRES = Dialect(
    id_column="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    real="DOUBLE PRECISION",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    row_lock=" FOR UPDATE",
    gate_lock="SELECT pg_advisory_xact_lock(?)",
    contains="strpos({column}, ?) > 0",
    json_field="({column}::json ->> '{name}')",
)
SCHEMA_LOCK = 0x6F70736D


@dataclass(frozen=True)
class Webhook:
    alerts: Sequence[RoutedAlert]
    external_url: str
    truncated: int
    now: float


class PostgresStore(Store):
    dialect = POSTGRES

    def __init__(self, dsn: str, max_connections: int = 10, timeout: float = 3.0, ingest_writers: int = 1) -> None:
        self.dsn = dsn
        self._pool = AsyncConnectionPool(
            dsn, min_size=1, max_size=max_connections, timeout=timeout, open=False,
            # Acknowledged means committed to the WAL on disk, whatever the server's default.
            kwargs={"connect_timeout": max(1, int(timeout)), "options": "-c synchronous_commit=on"},
        )  # fmt: skip
        self._schema_ready = False
        # One writer: while its batch waits for the WAL flush, the next batch fills. Measured at 32
        # connections, a second writer only adds flushes that compete with it and with the worker's.
        self._webhooks = GroupCommit[Webhook, int](self._ingest_batch, writers=ingest_writers)

    async def open(self) -> None:
        await self._pool.open(wait=False)
        try:
            await self._ensure_schema()
        except StoreUnavailable as exc:
            log.warning("store not reachable yet", extra={"store": "postgresql", "error": str(exc)})

    async def close(self) -> None:
        await self._webhooks.drain()
        await self._pool.close()

    async def ingest(self, alerts: Sequence[RoutedAlert], external_url: str, truncated: int, now: float) -> int:
        """As ``Store.ingest``, group-committed with concurrent webhooks."""
        return await self._webhooks.submit(Webhook(alerts, external_url, truncated, now))

    async def _ingest_batch(self, batch: Sequence[Webhook]) -> list[int | BaseException]:
        try:
            await self._ingest_all(batch)
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
            await self._ingest_all([webhook])
        except Exception as exc:
            return exc
        return len(webhook.alerts)

    async def _ingest_all(self, batch: Sequence[Webhook]) -> None:
        """Write a batch's alerts in one transaction, the alerts of one step side by side (``drive_together``).

        Step n holds each alert's n-th occurrence in the batch, in (fingerprint, startsAt) order: within a
        step every alert is a different incident (disjoint rows), one alert's webhooks keep their arrival
        order across steps, and every incident is locked in the first step, in one order for all writers.
        """
        await self._ensure_schema()
        seen: dict[tuple[str, str], int] = {}
        steps: list[list[tuple[RoutedAlert, Webhook]]] = []
        for webhook in batch:
            for routed in webhook.alerts:
                key = (routed.alert.fingerprint, routed.alert.starts_at)
                n = seen[key] = seen.get(key, -1) + 1
                if n == len(steps):
                    steps.append([])
                steps[n].append((routed, webhook))
        try:
            async with self._pool.connection() as conn, conn.pipeline() as pipeline, conn.transaction():

                async def execute_all(stmts: list[Stmt]) -> list[Result]:
                    cursors = [conn.cursor() for _ in stmts]
                    for cursor, stmt in zip(cursors, stmts, strict=True):
                        await cursor.execute(_sql(stmt), _params(stmt))
                    await pipeline.sync()
                    return [
                        Result(await cursor.fetchall() if cursor.description else [], cursor.rowcount)
                        for cursor in cursors
                    ]

                for step in steps:
                    step.sort(key=lambda pair: (pair[0].alert.fingerprint, pair[0].alert.starts_at))
                    ops = [self._ingest([routed], hook.external_url, hook.truncated, hook.now) for routed, hook in step]
                    await drive_together(ops, execute_all)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(f"postgresql: {exc}") from exc

    async def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        statements = self.schema()

        def create() -> Op[None]:
            yield Stmt("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK,))  # replicas start together
            for statement in statements:
                yield Stmt(statement)

        await self._transaction(create())
        self._schema_ready = True
        log.info("store opened", extra={"store": "postgresql"})

    async def _run(self, op: Op[T]) -> T:
        await self._ensure_schema()
        return await self._transaction(op)

    async def _transaction(self, op: Op[T]) -> T:
        try:
            async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:

                async def execute(stmt: Stmt) -> Result:
                    await cursor.execute(_sql(stmt), _params(stmt))
                    rows = await cursor.fetchall() if cursor.description else []
                    return Result(rows, cursor.rowcount)

                return await drive_async(op, execute)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(f"postgresql: {exc}") from exc


def _sql(stmt: Stmt) -> str:
    return stmt.sql.replace("?", "%s")


def _params(stmt: Stmt) -> tuple[object, ...]:
    return tuple(map(_no_nul, stmt.params))


def _no_nul(value: object) -> object:
    """Drop NUL characters from text: PostgreSQL text cannot hold them and would refuse the whole write
    (psycopg DataError), losing an action's result or a webhook over one byte of a label or a URL."""
    return value.replace("\x00", "") if isinstance(value, str) else value
