"""The workload against a real Redis and PostgreSQL: lists grow and drain, jobs fail into DLQs, caches count."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal

import psycopg
import pytest
from opsloop.demo.workload import MAX_STORM, ORDER_STATUSES, Queue, Workload, decode_item
from opsloop.testsupport.servers import RedisServer
from redis.asyncio import Redis

MakeWorkload = Callable[..., Workload]


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


async def scalar(pg: psycopg.AsyncConnection, sql: str) -> object:
    cur = await pg.execute(sql)
    row = await cur.fetchone()
    assert row is not None
    return row[0]


async def rows(pg: psycopg.AsyncConnection, sql: str) -> list[tuple[object, ...]]:
    cur = await pg.execute(sql)
    return await cur.fetchall()


def test_queue_names_map_to_keys_dlqs_and_groups() -> None:
    assert Queue.named("emails") == Queue(key="queue:emails", dlq="dlq:emails", group="emails")
    assert Queue.named("jobs:render") == Queue(key="jobs:render", dlq="dlq:render", group="render")


def test_decode_item_keeps_foreign_payloads() -> None:
    assert decode_item('{"id": "a", "enqueued_at": 1.5}') == {"id": "a", "enqueued_at": 1.5}
    assert decode_item("not json") == {"payload": "not json"}
    assert decode_item("[1, 2]") == {"payload": [1, 2]}


def test_knobs_reject_values_out_of_range() -> None:
    workload = Workload("redis://127.0.0.1:1/0", "postgresql://127.0.0.1:1/x")
    workload.fail_rate = 1.0
    workload.consumer_delay = 2.5
    assert (workload.fail_rate, workload.consumer_delay) == (1.0, 2.5)
    with pytest.raises(ValueError, match=r"fail_rate must be between 0\.0 and 1\.0"):
        workload.fail_rate = 1.5
    with pytest.raises(ValueError, match="cache_miss_rate"):
        workload.cache_miss_rate = -0.1
    with pytest.raises(ValueError, match="consumer_delay"):
        workload.consumer_delay = -1
    with pytest.raises(ValueError, match="produce_interval"):
        workload.produce_interval = 0
    with pytest.raises(ValueError, match="fail_rate"):
        workload.fail_rate = True
    assert workload.fail_rate == 1.0
    with pytest.raises(ValueError, match="at least one queue"):
        Workload("redis://127.0.0.1:1/0", "postgresql://127.0.0.1:1/x", queues=())


async def test_producers_fill_queues_oldest_right_and_consumers_drain_them(
    make_workload: MakeWorkload, redis: Redis, pg: psycopg.AsyncConnection
) -> None:
    workload = make_workload(produce_interval=0.01, fail_rate=0.0, consumer_delay=0.0)
    workload.consumers_paused = True
    before = time.time()
    await workload.start()

    async def both_filled() -> bool:
        return min([await redis.llen("queue:emails"), await redis.llen("jobs:render")]) >= 10

    await eventually(both_filled, "both queues to hold 10 items")
    items = [json.loads(raw) for raw in await redis.lrange("queue:emails", 0, -1)]
    assert {item["queue"] for item in items} == {"emails"}
    assert len({item["id"] for item in items}) == len(items)
    stamps = [item["enqueued_at"] for item in items]
    assert stamps == sorted(stamps, reverse=True), "newest on the left, oldest on the right"
    assert before <= stamps[-1] <= stamps[0] <= time.time()

    workload.produce_interval = 3600
    workload.consumers_paused = False

    async def drained() -> bool:
        queued = await redis.llen("queue:emails") + await redis.llen("jobs:render")
        return queued == 0 and await scalar(pg, "select count(*) from jobs") == workload.stats.produced

    await eventually(drained, "the queues to drain into jobs rows")
    assert workload.stats.succeeded == workload.stats.produced
    assert workload.stats.failed == 0
    assert await redis.exists("dlq:emails", "dlq:render") == 0


@pytest.mark.parametrize(
    ("fail_rate", "status", "error"), [(0.0, "succeeded", None), (1.0, "failed", "simulated failure")]
)
async def test_jobs_rows_and_dlqs_follow_fail_rate(
    make_workload: MakeWorkload,
    redis: Redis,
    pg: psycopg.AsyncConnection,
    fail_rate: float,
    status: str,
    error: str | None,
) -> None:
    workload = make_workload(produce_interval=0.01, fail_rate=fail_rate, consumer_delay=0.0)
    await workload.start()

    async def enough_jobs() -> bool:
        return await scalar(pg, "select count(*) >= 20 and count(distinct queue) = 2 from jobs") is True

    await eventually(enough_jobs, "20 jobs rows from both queues")
    await workload.stop()

    jobs = await rows(pg, "select queue, status, error, started_at <= finished_at from jobs")
    assert {row[0] for row in jobs} == {"emails", "render"}
    assert {row[1:] for row in jobs} == {(status, error, True)}
    dlq_items = [json.loads(raw) for key in ("dlq:emails", "dlq:render") for raw in await redis.lrange(key, 0, -1)]
    failed_rows = len(jobs) if fail_rate else 0
    assert len(dlq_items) == failed_rows == workload.stats.failed
    for item in dlq_items:
        assert item["error"] == "simulated failure"
        assert item["enqueued_at"] <= item["failed_at"]


async def test_dlq_storm_pushes_exactly_n_failed_items(make_workload: MakeWorkload, redis: Redis) -> None:
    workload = make_workload(fail_rate=0.0)
    await workload.start()

    assert await workload.dlq_storm(250) == "dlq:emails"
    assert await workload.dlq_storm(1500, queue="jobs:render") == "dlq:render"

    assert await redis.llen("dlq:emails") == 250
    assert await redis.llen("dlq:render") == 1500
    item = json.loads(await redis.lindex("dlq:render", 0))
    assert item["queue"] == "render"
    assert item["error"] == "storm"
    assert abs(item["failed_at"] - time.time()) < 10
    assert len({json.loads(raw)["id"] for raw in await redis.lrange("dlq:emails", 0, -1)}) == 250
    with pytest.raises(ValueError, match="1 to"):
        await workload.dlq_storm(0)
    with pytest.raises(ValueError, match="1 to"):
        await workload.dlq_storm(MAX_STORM + 1)
    with pytest.raises(KeyError, match="payments"):
        await workload.dlq_storm(1, queue="payments")
    assert await redis.llen("dlq:emails") == 250


async def test_cache_stats_count_hits_and_misses(make_workload: MakeWorkload, redis: Redis) -> None:
    workload = make_workload(cache_interval=0.002, hot_keys=3, cache_ttl=60, cache_miss_rate=1.0)
    await workload.start()

    async def misses(at_least: int) -> bool:
        return int(await redis.hget("cache:stats:items", "misses") or 0) >= at_least

    await eventually(lambda: misses(30), "30 cache misses")
    assert await redis.hget("cache:stats:items", "hits") is None
    cached = [key async for key in redis.scan_iter("cache:item:*")]
    assert len(cached) >= 30
    assert 0 < await redis.pttl(cached[0]) <= 60_000

    workload.cache_miss_rate = 0.0
    misses_at_flip = int(await redis.hget("cache:stats:items", "misses"))

    async def hits() -> bool:
        return int(await redis.hget("cache:stats:items", "hits") or 0) >= 30

    await eventually(hits, "30 cache hits")
    await workload.stop()
    stats = await redis.hgetall("cache:stats:items")
    # After the flip only the three hot keys can miss (plus one read already under way).
    assert misses_at_flip <= int(stats["misses"]) <= misses_at_flip + 3 + 1
    assert (workload.stats.cache_hits, workload.stats.cache_misses) == (int(stats["hits"]), int(stats["misses"]))


async def test_workers_register_heartbeat_and_deregister(make_workload: MakeWorkload, redis: Redis) -> None:
    workload = make_workload(consumers_per_queue=2, heartbeat_ttl=3)
    await workload.start()

    async def registered() -> bool:
        return await redis.scard("workers:emails") == 2 and await redis.scard("workers:render") == 2

    await eventually(registered, "four registered workers")
    assert await redis.smembers("workers:emails") == {"emails-1", "emails-2"}
    assert await redis.smembers("workers:render") == {"render-1", "render-2"}
    assert 0 < await redis.pttl("worker:emails:emails-2") <= 3000
    assert abs(float(await redis.get("worker:render:render-1")) - time.time()) < 5

    await workload.stop()
    assert await redis.exists("workers:emails", "workers:render") == 0
    assert await redis.keys("worker:*") == []


async def test_orders_arrive_with_a_mix_of_statuses(make_workload: MakeWorkload, pg: psycopg.AsyncConnection) -> None:
    workload = make_workload(order_interval=0.005)
    await workload.start()

    async def orders() -> bool:
        return await scalar(pg, "select count(*) from orders") >= 60

    await eventually(orders, "60 orders")
    await workload.stop()
    by_status = dict(await rows(pg, "select status, count(*) from orders group by status"))
    assert set(by_status) <= set(ORDER_STATUSES)
    assert len(by_status) >= 2
    assert max(by_status, key=by_status.__getitem__) == "paid"
    low, high = (await rows(pg, "select min(amount), max(amount) from orders"))[0]
    assert Decimal(5) <= low <= high <= Decimal(500)
    assert sum(by_status.values()) == workload.stats.orders


async def test_stop_hands_jobs_in_progress_back_and_leaves_no_tasks(
    make_workload: MakeWorkload, redis: Redis, pg: psycopg.AsyncConnection
) -> None:
    tasks_before = asyncio.all_tasks()
    workload = make_workload(produce_interval=3600, consumer_delay=30)
    await workload.start()
    assert workload.running_tasks == 2 + 2 + 2 * 2  # orders, cache, two producers, two consumers + heartbeats

    async def taken() -> bool:
        return workload.stats.produced == 2 and await redis.llen("queue:emails") + await redis.llen("jobs:render") == 0

    await eventually(taken, "both consumers to take their queue's only item")
    started = time.monotonic()
    await workload.stop()
    assert time.monotonic() - started < 3
    assert workload.running_tasks == 0
    assert asyncio.all_tasks() - tasks_before == {asyncio.current_task()} - tasks_before
    assert await redis.llen("queue:emails") == await redis.llen("jobs:render") == 1
    assert await scalar(pg, "select count(*) from jobs") == 0
    await workload.stop()  # a second stop is harmless


async def test_loops_survive_a_redis_restart(
    make_workload: MakeWorkload, redis: Redis, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    workload = make_workload(produce_interval=0.01, heartbeat_ttl=0.6)
    workload.consumers_paused = True
    await workload.start()
    tasks = workload.running_tasks

    async def filled() -> bool:
        return await redis.llen("queue:emails") >= 5

    await eventually(filled, "items on queue:emails")
    caplog.set_level(logging.WARNING, "opsloop.demo.workload")
    redis_server.kill()
    producers = {f"produce {queue.key}" for queue in workload.queues}

    async def every_producer_failed() -> bool:
        failing = {r.loop for r in caplog.records if r.getMessage() == "workload loop failing"}
        return producers <= failing

    await eventually(every_producer_failed, "the producers to fail against the dead Redis")
    assert workload.running_tasks == tasks
    produced_while_down = workload.stats.produced

    redis_server.start()  # an empty Redis on the same port; the test's own client reconnects afresh
    async with Redis.from_url(redis_server.url, decode_responses=True) as fresh:

        async def refilled() -> bool:
            return await fresh.llen("queue:emails") >= 5 and await fresh.sismember("workers:emails", "emails-1")

        await eventually(refilled, "producers to write and workers to register again")
        assert workload.running_tasks == tasks
        await workload.stop()
        # Barrier: everything counted since the outage began is in the fresh Redis (nothing consumes),
        # so no item was counted as produced while Redis was down.
        lengths = [await fresh.llen(queue.key) for queue in workload.queues]
        assert workload.stats.produced - produced_while_down == sum(lengths)
