"""PostgreSQL store, for several receiver replicas sharing one database.

Replicas share work through row locks (``FOR UPDATE SKIP LOCKED`` when claiming jobs) and serialise plan
gating (caps, cooldown, circuit breaker) with a transaction-level advisory lock, so a plan runs once.
The pool connects lazily: the receiver starts (and answers 503) while PostgreSQL is down.
"""

from __future__ import annotations

import logging
from typing import TypeVar

import psycopg
from opsloop.receiver.store.driver import Op, Result, Stmt, StoreUnavailable, drive_async
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


class PostgresStore(Store):
    dialect = POSTGRES

    def __init__(self, dsn: str, max_connections: int = 10, timeout: float = 3.0) -> None:
        self.dsn = dsn
        self._pool = AsyncConnectionPool(
            dsn, min_size=1, max_size=max_connections, timeout=timeout, open=False,
            # Acknowledged means committed to the WAL on disk, whatever the server's default.
            kwargs={"connect_timeout": max(1, int(timeout)), "options": "-c synchronous_commit=on"},
        )  # fmt: skip
        self._schema_ready = False

    async def open(self) -> None:
        await self._pool.open(wait=False)
        try:
            await self._ensure_schema()
        except StoreUnavailable as exc:
            log.warning("store not reachable yet", extra={"store": "postgresql", "error": str(exc)})

    async def close(self) -> None:
        await self._pool.close()

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
                    await cursor.execute(stmt.sql.replace("?", "%s"), tuple(map(_no_nul, stmt.params)))
                    rows = await cursor.fetchall() if cursor.description else []
                    return Result(rows, cursor.rowcount)

                return await drive_async(op, execute)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(f"postgresql: {exc}") from exc


def _no_nul(value: object) -> object:
    """Drop NUL characters from text: PostgreSQL text cannot hold them and would refuse the whole write
    (psycopg DataError), losing an action's result or a webhook over one byte of a label or a URL."""
    return value.replace("\x00", "") if isinstance(value, str) else value
