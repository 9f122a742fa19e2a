"""A small service's work on Redis and PostgreSQL, with knobs the demo turns to break it on purpose.

The demo runs this beside the exporter so every metric and alert has something real to measure. It follows
the Redis conventions that opsloop's exporter and recovery actions rely on:

- Queues are Redis lists. Producers ``LPUSH`` JSON items ``{"id": ..., "enqueued_at": <unix seconds float>,
  "queue": ...}`` onto ``queue:<name>`` (a name that already has a prefix, such as ``jobs:render``, is the
  key itself). Consumers ``BRPOP``, so the oldest item sits at the right end (``LINDEX key -1``).
- A failed job is ``LPUSH``ed onto ``dlq:<queue name without prefix>`` (``queue:emails`` -> ``dlq:emails``,
  ``jobs:render`` -> ``dlq:render``) with the same JSON plus ``error`` and ``failed_at`` (unix seconds).
- Workers register with ``SADD workers:<group> <id>``, the group being the queue name without prefix, and
  keep a heartbeat key ``worker:<group>:<id>`` alive with a TTL: a worker whose key expired is gone.
- Cache reads ``GET cache:item:<n>``; a miss sets the key with a TTL. The app counts its own stats with
  ``HINCRBY cache:stats:<cache name> hits|misses 1``.

In PostgreSQL (``schema.sql``, applied on start) every processed job inserts a ``jobs`` row (``succeeded``
or ``failed``) and orders arrive at a steady pace with a mix of statuses.

Every loop is paced and outlives outages: a Redis or PostgreSQL error is logged once per outage and the loop
retries after ``retry_interval``, so a scenario such as killing Redis shows up in metrics, not as a crash.
A ``Workload`` is started once and stopped once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).with_name("schema.sql")
ORDER_STATUSES = ("paid", "pending", "refunded", "cancelled")
ORDER_WEIGHTS = (0.80, 0.12, 0.05, 0.03)
MAX_STORM = 100_000
STORM_BATCH = 1_000
POLL_TIMEOUT = 0.5  # BRPOP wait: how quickly an idle consumer notices stop() or a pause
PAUSED_POLL = 0.2
OUTAGES = (RedisError, psycopg.Error, OSError)


class Knob:
    """A setting the demo changes at run time, checked on every assignment (a rate of 1.5 is an error)."""

    def __init__(self, low: float, high: float = math.inf) -> None:
        self.low, self.high = low, high

    def __set_name__(self, owner: type, name: str) -> None:
        self.name, self.attr = name, f"_{name}"

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        return self if obj is None else getattr(obj, self.attr)

    def __set__(self, obj: object, value: float) -> None:
        if isinstance(value, bool) or not self.low <= value <= self.high:
            raise ValueError(f"{self.name} must be between {self.low} and {self.high}, got {value!r}")
        setattr(obj, self.attr, float(value))


@dataclass(frozen=True)
class Queue:
    """One work queue: its list key, its dead-letter list and the group its workers register in."""

    key: str
    dlq: str
    group: str

    @classmethod
    def named(cls, name: str) -> Queue:
        """``emails`` -> ``queue:emails``; ``jobs:render`` stays as it is. Both lose the prefix for the DLQ."""
        key = name if ":" in name else f"queue:{name}"
        short = key.split(":", 1)[1]
        return cls(key=key, dlq=f"dlq:{short}", group=short)


@dataclass
class WorkloadStats:
    """Running totals for the demo's live summary."""

    produced: int = 0
    succeeded: int = 0
    failed: int = 0
    orders: int = 0
    cache_hits: int = 0
    cache_misses: int = 0


def decode_item(raw: str) -> dict[str, Any]:
    """An item as a dict; something that is not a JSON object (pushed by hand) is kept as ``payload``."""
    try:
        item = json.loads(raw)
    except ValueError:
        return {"payload": raw}
    return item if isinstance(item, dict) else {"payload": item}


class Workload:
    """Producers, consumers, heartbeats, cache reads and orders, each a paced loop until ``stop()``."""

    fail_rate = Knob(0.0, 1.0)
    """Share of processed jobs that fail into the DLQ."""
    cache_miss_rate = Knob(0.0, 1.0)
    """Share of cache reads that ask for a key never cached (the real miss rate is at least this)."""
    consumer_delay = Knob(0.0, 3600.0)
    """Seconds each job takes: raise it for a slow consumer."""
    produce_interval = Knob(0.001, 3600.0)
    """Seconds between two items on each queue."""

    def __init__(
        self,
        redis_url: str,
        pg_dsn: str,
        *,
        queues: Sequence[str] = ("emails", "jobs:render"),
        consumers_per_queue: int = 1,
        produce_interval: float = 0.2,
        order_interval: float = 0.5,
        cache_interval: float = 0.05,
        cache_name: str = "items",
        hot_keys: int = 100,
        cache_ttl: float = 300.0,
        heartbeat_ttl: float = 15.0,
        max_queue_length: int = 10_000,
        retry_interval: float = 1.0,
        fail_rate: float = 0.02,
        consumer_delay: float = 0.05,
        cache_miss_rate: float = 0.1,
        seed: int | None = None,
    ) -> None:
        if not queues or consumers_per_queue < 1 or hot_keys < 1 or max_queue_length < 1:
            raise ValueError("need at least one queue, one consumer per queue, one hot key and room in queues")
        self.queues = [Queue.named(name) for name in queues]
        self.consumers_per_queue = consumers_per_queue
        self.order_interval = order_interval
        self.cache_interval = cache_interval
        self.cache_stats_key = f"cache:stats:{cache_name}"
        self.hot_keys = hot_keys
        self.cache_ttl = cache_ttl
        self.heartbeat_ttl = heartbeat_ttl
        self.max_queue_length = max_queue_length
        self.retry_interval = retry_interval
        self.fail_rate = fail_rate
        self.consumer_delay = consumer_delay
        self.cache_miss_rate = cache_miss_rate
        self.produce_interval = produce_interval
        self.consumers_paused = False
        """When true, consumers take nothing (their heartbeats go on): the queues back up."""
        self.stats = WorkloadStats()
        self._random = random.Random(seed)
        # Short socket timeouts: a paused (SIGSTOPped) Redis must turn into errors, not hung loops.
        self._redis = Redis.from_url(redis_url, decode_responses=True, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._pg = AsyncConnectionPool(
            pg_dsn, min_size=1, max_size=4, open=False, timeout=5.0, check=AsyncConnectionPool.check_connection
        )
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._workers = [
            (queue, f"{queue.group}-{n}") for queue in self.queues for n in range(1, consumers_per_queue + 1)
        ]
        self._started = False

    async def start(self) -> None:
        """Check both stores answer, apply the schema, then start every loop."""
        if self._started:
            raise RuntimeError("a Workload starts once")
        self._started = True
        await self._redis.ping()
        await self._pg.open(wait=True, timeout=10.0)
        async with self._pg.connection() as conn:
            await conn.execute(SCHEMA_PATH.read_text())
        loops: list[tuple[str, Callable[[], Awaitable[float]]]] = [
            ("orders", self._add_order),
            ("cache", self._read_cache),
        ]
        for queue in self.queues:
            loops.append((f"produce {queue.key}", partial(self._produce, queue)))
        for queue, worker in self._workers:
            loops.append((f"consume {worker}", partial(self._consume, queue)))
            loops.append((f"heartbeat {worker}", partial(self._heartbeat, queue, worker)))
        self._tasks = [asyncio.create_task(self._repeat(name, step), name=name) for name, step in loops]
        log.info(
            "workload started",
            extra={"queues": [q.key for q in self.queues], "workers": [w for _, w in self._workers]},
        )

    async def stop(self, grace: float = 5.0) -> None:
        """End every loop (a job in progress goes back onto its queue), deregister workers, disconnect."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._tasks:  # empty when start() never got as far as starting the loops
            done, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                if task.exception() is not None:
                    log.error("workload loop crashed", extra={"loop": task.get_name()}, exc_info=task.exception())
        try:
            await self._deregister()
        except OUTAGES as exc:
            log.warning("workers not deregistered", extra={"error": str(exc) or type(exc).__name__})
        await self._redis.aclose()
        await self._pg.close()
        log.info("workload stopped", extra={"stats": vars(self.stats)})

    @property
    def running_tasks(self) -> int:
        """How many loops are still running (zero after ``stop()``)."""
        return sum(not task.done() for task in self._tasks)

    def queue(self, name: str) -> Queue:
        """Find one of this workload's queues by name, key or group (``emails``, ``queue:emails``)."""
        for queue in self.queues:
            if name in (queue.key, queue.group):
                return queue
        raise KeyError(f"no queue {name!r} in this workload")

    async def dlq_storm(self, n: int, queue: str | None = None) -> str:
        """Push ``n`` failed items onto one DLQ at once (default: the first queue's); return the DLQ key."""
        if not 1 <= n <= MAX_STORM:
            raise ValueError(f"a DLQ storm pushes 1 to {MAX_STORM} items, got {n}")
        target = self.queue(queue) if queue else self.queues[0]
        now = time.time()
        items = [
            json.dumps(
                {"id": uuid4().hex, "enqueued_at": now, "queue": target.group, "error": "storm", "failed_at": now}
            )
            for _ in range(n)
        ]
        for first in range(0, n, STORM_BATCH):
            await self._redis.lpush(target.dlq, *items[first : first + STORM_BATCH])
        log.info("dlq storm", extra={"dlq": target.dlq, "items": n})
        return target.dlq

    async def _repeat(self, name: str, step: Callable[[], Awaitable[float]]) -> None:
        """Run ``step`` until stop(); it returns the seconds to wait before its next run."""
        failing = False
        while not self._stopping.is_set():
            try:
                wait = await step()
            except OUTAGES as exc:
                if not failing:
                    log.warning("workload loop failing", extra={"loop": name, "error": str(exc) or repr(exc)})
                failing, wait = True, self.retry_interval
            else:
                if failing:
                    log.info("workload loop recovered", extra={"loop": name})
                failing = False
            if await self._idle(wait):
                return

    async def _idle(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when stop() was called meanwhile."""
        if seconds <= 0:
            return self._stopping.is_set()
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _produce(self, queue: Queue) -> float:
        if await self._redis.llen(queue.key) < self.max_queue_length:
            item = {"id": uuid4().hex, "enqueued_at": time.time(), "queue": queue.group}
            await self._redis.lpush(queue.key, json.dumps(item))
            self.stats.produced += 1
        return self.produce_interval

    async def _consume(self, queue: Queue) -> float:
        if self.consumers_paused:
            return PAUSED_POLL
        popped = await self._redis.brpop([queue.key], timeout=POLL_TIMEOUT)
        if popped is None:
            return 0.0
        raw = popped[1]
        started = datetime.now(UTC)
        if await self._idle(self.consumer_delay):
            await self._redis.rpush(queue.key, raw)  # stopped mid-job: back at the oldest end
            return 0.0
        error = "simulated failure" if self._random.random() < self.fail_rate else None
        if error:
            failed = {**decode_item(raw), "error": error, "failed_at": time.time()}
            await self._redis.lpush(queue.dlq, json.dumps(failed))
            self.stats.failed += 1
        else:
            self.stats.succeeded += 1
        async with self._pg.connection() as conn:
            await conn.execute(
                "insert into jobs (queue, status, started_at, finished_at, error) values (%s, %s, %s, %s, %s)",
                (queue.group, "failed" if error else "succeeded", started, datetime.now(UTC), error),
            )
        return 0.0

    async def _heartbeat(self, queue: Queue, worker: str) -> float:
        pipe = self._redis.pipeline(transaction=False)
        pipe.sadd(f"workers:{queue.group}", worker)
        pipe.set(f"worker:{queue.group}:{worker}", str(time.time()), px=int(self.heartbeat_ttl * 1000))
        await pipe.execute()
        return self.heartbeat_ttl / 3

    async def _deregister(self) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for queue, worker in self._workers:
            pipe.srem(f"workers:{queue.group}", worker)
            pipe.delete(f"worker:{queue.group}:{worker}")
        await pipe.execute()

    async def _read_cache(self) -> float:
        if self._random.random() < self.cache_miss_rate:
            n = self.hot_keys + self._random.randrange(10**9)  # never cached: a sure miss
        else:
            n = self._random.randrange(self.hot_keys)
        key = f"cache:item:{n}"
        if await self._redis.get(key) is not None:
            await self._redis.hincrby(self.cache_stats_key, "hits", 1)
            self.stats.cache_hits += 1
        else:
            pipe = self._redis.pipeline(transaction=False)
            pipe.hincrby(self.cache_stats_key, "misses", 1)
            pipe.set(key, json.dumps({"n": n, "at": time.time()}), px=int(self.cache_ttl * 1000))
            await pipe.execute()
            self.stats.cache_misses += 1
        return self.cache_interval

    async def _add_order(self) -> float:
        status = self._random.choices(ORDER_STATUSES, ORDER_WEIGHTS)[0]
        amount = Decimal(str(round(self._random.uniform(5, 500), 2)))
        async with self._pg.connection() as conn:
            await conn.execute("insert into orders (status, amount) values (%s, %s)", (status, amount))
        self.stats.orders += 1
        return self.order_interval
