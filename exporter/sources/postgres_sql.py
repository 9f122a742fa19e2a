"""Business metrics from SQL queries against PostgreSQL, cached per query interval.

Each query runs at most once per ``interval`` in a read-only transaction with ``statement_timeout``;
scrapes in between serve the last good result, and a failed refresh keeps serving it with its age in
``opsloop_business_query_result_age_seconds``. Rows become samples named
``opsloop_business_<query>_<value>``: label columns become labels, NULL values are skipped, and a
non-numeric value, a missing column or a duplicate label set fails that query only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

import psycopg
from opsloop.exporter.sources.base import Metric, PartialFailure, Sample
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from opsloop.metric_contract import QUERY_DURATION, QUERY_ERRORS, QUERY_RESULT_AGE, business_metric

if TYPE_CHECKING:
    from opsloop.exporter.config import BusinessConfig, QueryConfig

log = logging.getLogger(__name__)

RETRY_AFTER_FAILURE = 5.0
"""Seconds before a failed query is tried again (its interval, when shorter)."""


class QueryDataError(ValueError):
    """The query ran but its rows cannot become metrics (bad value, missing column, duplicate labels)."""


@dataclass
class BusinessQuery:
    config: QueryConfig
    metrics: dict[str, Metric] = field(init=False)
    samples: list[Sample] | None = None
    fetched_at: float | None = None
    duration: float = 0.0
    next_due: float = 0.0
    errors: int = 0
    unreachable: bool = False
    task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.metrics = {
            name: business_metric(self.config.name, name, value.type, value.help, tuple(self.config.labels))
            for name, value in self.config.values.items()
        }

    def to_samples(self, columns: list[str], rows: list[tuple[object, ...]]) -> list[Sample]:
        missing = [c for c in (*self.config.labels, *self.config.values) if c not in columns]
        if missing:
            raise QueryDataError(f"result has no column {', '.join(missing)}")
        label_pos = [columns.index(c) for c in self.config.labels]
        value_pos = {name: columns.index(name) for name in self.config.values}
        seen: set[tuple[str, ...]] = set()
        samples: list[Sample] = []
        for row in rows:
            labels = tuple(_label_text(row[i]) for i in label_pos)
            if labels in seen:
                raise QueryDataError(f"duplicate label set {dict(zip(self.config.labels, labels, strict=True))}")
            seen.add(labels)
            for name, pos in value_pos.items():
                raw = row[pos]
                if raw is None:
                    continue  # NULL: no sample rather than a made-up 0
                samples.append(Sample(self.metrics[name], labels, _number(raw, name)))
        return samples


def _label_text(raw: object) -> str:
    """A label value as text. A SQL_ASCII database hands text over as bytes: decode them as UTF-8,
    replacing what is not, so a label is ``paid`` and never ``b'paid'``."""
    if raw is None:
        return ""
    if isinstance(raw, bytes | bytearray | memoryview):
        return bytes(raw).decode("utf-8", errors="replace")
    return str(raw)


def _number(raw: object, column: str) -> float:
    if isinstance(raw, bool | int | float | Decimal):
        return float(raw)
    raise QueryDataError(f"column {column} is not numeric: {type(raw).__name__} {str(raw)[:40]!r}")


class PostgresSource:
    name = "postgres"

    def __init__(self, config: BusinessConfig) -> None:
        self.config = config
        self.queries = [BusinessQuery(q) for q in config.queries]
        dsn = config.secret("dsn")
        assert dsn is not None  # required: the config load checked that one of its three keys is set
        self.pool = AsyncConnectionPool(
            dsn,
            min_size=0,
            max_size=config.pool_size,
            open=False,
            timeout=config.connect_timeout,
            check=AsyncConnectionPool.check_connection,
            kwargs={"autocommit": True, "connect_timeout": max(1, round(config.connect_timeout)),
                    "application_name": "opsloop-exporter"},
        )  # fmt: skip
        self._opened = False

    async def read(self) -> list[Sample]:
        if not self._opened:
            await self.pool.open(wait=False)
            self._opened = True
        now = time.monotonic()
        for query in self.queries:
            if now >= query.next_due and (query.task is None or query.task.done()):
                query.task = asyncio.create_task(self._refresh(query))
        first_runs = [q.task for q in self.queries if q.samples is None and q.task is not None]
        if first_runs:
            # Not cancelled with the scrape: a slow first run finishes and serves the next scrape.
            await asyncio.wait([asyncio.shield(t) for t in first_runs])
        samples = self._samples()
        if self.queries and all(q.unreachable for q in self.queries):
            raise PartialFailure(samples, "PostgreSQL is unreachable")
        return samples

    def _samples(self) -> list[Sample]:
        wall = time.time()
        samples: list[Sample] = []
        for query in self.queries:
            label = (query.config.name,)
            samples.append(Sample(QUERY_ERRORS, label, float(query.errors)))
            if query.samples is None or query.fetched_at is None:
                continue
            samples.extend(query.samples)
            samples.append(Sample(QUERY_RESULT_AGE, label, max(0.0, wall - query.fetched_at)))
            samples.append(Sample(QUERY_DURATION, label, query.duration))
        return samples

    async def _refresh(self, query: BusinessQuery) -> None:
        cfg = query.config
        started = time.monotonic()
        try:
            async with asyncio.timeout(cfg.timeout + self.config.connect_timeout + 1.0):
                columns, rows = await self._run(cfg)
            query.samples = query.to_samples(columns, rows)
        except Exception as exc:  # any failure of one query is that query's alone
            query.errors += 1
            query.unreachable = isinstance(exc, PoolTimeout | psycopg.OperationalError) and not isinstance(
                exc, psycopg.errors.QueryCanceled
            )
            query.next_due = time.monotonic() + min(cfg.interval, RETRY_AFTER_FAILURE)
            log.warning("business query failed", extra={"query": cfg.name, "error": _describe(exc)})
            return
        query.fetched_at = time.time()
        query.duration = time.monotonic() - started
        query.unreachable = False
        query.next_due = started + cfg.interval

    async def _run(self, cfg: QueryConfig) -> tuple[list[str], list[tuple[object, ...]]]:
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION READ ONLY")
            await conn.execute(f"SET LOCAL statement_timeout = {max(1, int(cfg.timeout * 1000))}")
            cursor = await conn.execute(cfg.sql.encode())
            rows = await cursor.fetchall()
            columns = [d.name for d in cursor.description or ()]
        return columns, rows

    async def close(self) -> None:
        for query in self.queries:
            if query.task is not None:
                query.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await query.task
        await self.pool.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return "canceled by statement_timeout"
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
