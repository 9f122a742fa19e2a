"""arq queues read by the exporter, compared with arq's job API while a real worker runs and dies."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
from arq import create_pool
from arq.connections import RedisSettings
from arq.jobs import Job, JobStatus

from tests.exporter.scrapes import scrape, value

pytestmark = pytest.mark.slow


async def statuses(pool, queue: str) -> list[JobStatus]:
    """The status arq itself reports for every job id in the queue."""
    ids = [job_id.decode() for job_id in await pool.zrange(queue, 0, -1)]
    return [await Job(job_id, pool, _queue_name=queue).status() for job_id in ids]


async def test_every_series_matches_arq_including_after_sigkill(redis_server, workers, write_config, exporter_client):
    pool = await create_pool(RedisSettings.from_dsn(redis_server.url))
    # Controlled time: the oldest waiting job became due 100 s ago.
    oldest = await pool.enqueue_job("succeed", 1, _defer_until=datetime.now(UTC) - timedelta(seconds=100))
    await pool.enqueue_job("succeed", 2)
    await pool.enqueue_job("succeed", 3, _defer_by=timedelta(hours=1))
    running = await pool.enqueue_job("sleep", 120, _queue_name="arq:slow")
    worker = workers.start("arq", "arq_jobs.SlowWorkerSettings")
    deadline = time.monotonic() + 30
    while await running.status() != JobStatus.in_progress:
        assert time.monotonic() < deadline, "the slow job did not start"
        await asyncio.sleep(0.1)

    entry = {"redis": "main", "kind": "arq", "queues": ["arq:queue", "arq:slow", "arq:nothere"]}
    client = await exporter_client(
        write_config({"redis": [{"name": "main", "url": redis_server.url}], "frameworks": [entry]})
    )
    series = await scrape(client)
    q = {"redis": "main", "queue": "arq:queue", "framework": "arq"}
    s = {"redis": "main", "queue": "arq:slow", "framework": "arq"}
    main = await statuses(pool, "arq:queue")
    assert value(series, "opsloop_queue_length", **q) == main.count(JobStatus.queued) == 2
    assert value(series, "opsloop_queue_scheduled", **q) == main.count(JobStatus.deferred) == 1
    assert value(series, "opsloop_queue_in_progress", **q) == main.count(JobStatus.in_progress) == 0
    info = await oldest.info()
    assert info is not None
    assert abs(value(series, "opsloop_queue_oldest_age_seconds", **q) - (time.time() - info.score / 1000)) <= 1
    assert value(series, "opsloop_queue_oldest_age_seconds", **q) >= 100
    slow = await statuses(pool, "arq:slow")
    assert value(series, "opsloop_queue_in_progress", **s) == slow.count(JobStatus.in_progress) == 1
    assert value(series, "opsloop_queue_length", **s) == slow.count(JobStatus.queued) == 0
    assert value(series, "opsloop_queue_oldest_age_seconds", **s) == 0
    for metric in ("opsloop_queue_length", "opsloop_queue_oldest_age_seconds", "opsloop_queue_in_progress",
                   "opsloop_queue_scheduled"):  # fmt: skip
        assert value(series, metric, redis="main", queue="arq:nothere", framework="arq") == 0
    assert value(series, "opsloop_queue_workers", **q) is None  # arq keeps no worker registry

    workers.kill(worker)  # SIGKILL: the job keeps its in-progress key until that key's TTL ends
    series = await scrape(client)
    slow = await statuses(pool, "arq:slow")
    assert value(series, "opsloop_queue_in_progress", **s) == slow.count(JobStatus.in_progress) == 1
    await pool.aclose()


async def test_key_of_wrong_type_fails_the_source(redis_server, write_config, exporter_client):
    redis.Redis.from_url(redis_server.url).set("arq:queue", "not a sorted set")
    entry = {"redis": "main", "kind": "arq", "queues": ["arq:queue"]}
    client = await exporter_client(
        write_config({"redis": [{"name": "main", "url": redis_server.url}], "frameworks": [entry]})
    )
    series = await scrape(client)
    assert value(series, "opsloop_source_up", source="redis/main") == 0
    assert value(series, "opsloop_source_errors_total", source="redis/main") == 1
