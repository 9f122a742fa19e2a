"""RQ queues read by the exporter, compared with RQ's own API while real RQ workers run and die."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
from rq import Queue, Worker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from tests.exporter.scrapes import scrape, value
from tests.frameworkjobs.workers import wait_for

pytestmark = pytest.mark.slow


def rq_time(seconds_ago: float) -> str:
    """A time in RQ's own job-hash format, ``seconds_ago`` before now."""
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def config(url: str, **entry: object) -> dict[str, object]:
    return {"redis": [{"name": "main", "url": url}], "frameworks": [{"redis": "main", "kind": "rq", **entry}]}


async def test_every_series_matches_rq_including_after_sigkill(redis_server, workers, write_config, exporter_client):
    r = redis.Redis.from_url(redis_server.url)
    default, slow = Queue("default", connection=r), Queue("slow", connection=r)
    for reason in ("a", "b"):
        default.enqueue("rq_jobs.fail", reason)
    workers.burst("rq", "worker", "--burst", "--url", redis_server.url, "default")
    for n in range(3):
        default.enqueue("rq_jobs.succeed", n)
    default.enqueue_in(timedelta(hours=1), "rq_jobs.succeed")
    r.rpush("rq:queue:default:intermediate", "popped-by-a-worker")  # RQ's own key: not a queue
    slow.enqueue("rq_jobs.sleep", 120)
    worker = workers.start("rq", "worker", "--url", redis_server.url, "--name", "slow-1", "slow")
    started = StartedJobRegistry(queue=slow)
    wait_for(lambda: started.get_job_count(cleanup=False) == 1, what="the slow job to start")
    # Controlled times: the oldest waiting job was enqueued 100 s ago, the oldest failure 200 s ago.
    stamped = time.time()
    r.hset(f"rq:job:{default.job_ids[0]}", "enqueued_at", rq_time(100))
    oldest_failed = r.zrange("rq:failed:default", 0, 0)[0].decode()
    r.hset(f"rq:job:{oldest_failed}", "ended_at", rq_time(200))

    client = await exporter_client(write_config(config(redis_server.url)))
    series = await scrape(client)
    late = time.time() - stamped  # the time the scrape itself took since the stamps were written
    d = {"redis": "main", "queue": "default", "framework": "rq"}
    s = {"redis": "main", "queue": "slow", "framework": "rq"}
    failed = FailedJobRegistry(queue=default)
    assert value(series, "opsloop_queue_length", **d) == default.count == 3
    assert 100 <= value(series, "opsloop_queue_oldest_age_seconds", **d) <= 100 + late
    assert value(series, "opsloop_queue_scheduled", **d) == ScheduledJobRegistry(queue=default).count == 1
    assert value(series, "opsloop_dlq_length", dlq="rq:failed:default", **d) == failed.count == 2
    assert 200 <= value(series, "opsloop_dlq_oldest_age_seconds", dlq="rq:failed:default", **d) <= 200 + late
    assert value(series, "opsloop_queue_in_progress", **d) == 0
    assert value(series, "opsloop_queue_workers", **d) == len(Worker.all(queue=default)) == 0
    assert value(series, "opsloop_queue_length", **s) == slow.count == 0
    assert value(series, "opsloop_queue_oldest_age_seconds", **s) == 0
    assert value(series, "opsloop_queue_in_progress", **s) == started.get_job_count(cleanup=False) == 1
    assert value(series, "opsloop_queue_in_progress_overdue", **s) == 0
    assert value(series, "opsloop_queue_workers", **s) == len(Worker.all(queue=slow)) == 1
    assert value(series, "opsloop_dlq_oldest_age_seconds", dlq="rq:failed:slow", **s) == 0
    assert value(series, "opsloop_queue_unreadable_records", **d) == 0
    assert value(series, "opsloop_source_up", source="redis/main") == 1
    assert {labels for name, labels in series if name == "opsloop_queue_length"} == {
        frozenset(d.items()),
        frozenset(s.items()),
    }  # exactly RQ's queues: no :intermediate list

    workers.kill(worker)  # SIGKILL: the worker stays in rq:workers, its job in the started registry
    assert r.smembers("rq:workers:slow") == {b"rq:worker:slow-1"}
    # Let time pass for the dead worker: its hash and its execution heartbeat expire as they would.
    r.pexpire("rq:worker:slow-1", 1)
    (entry,) = r.zrange("rq:wip:slow", 0, -1)
    r.zadd("rq:wip:slow", {entry: time.time() - 1}, xx=True)
    wait_for(lambda: not r.exists("rq:worker:slow-1"), what="the dead worker's hash to expire")
    series = await scrape(client)
    assert r.smembers("rq:workers:slow") == {b"rq:worker:slow-1"}  # still registered, but dead
    assert value(series, "opsloop_queue_workers", **s) == len(Worker.all(queue=slow)) == 0
    assert value(series, "opsloop_queue_in_progress", **s) == started.get_job_count(cleanup=False) == 1
    assert value(series, "opsloop_queue_in_progress_overdue", **s) == len(started.get_expired_job_ids()) == 1


async def test_missing_queue_reads_zero_and_foreign_records_count_as_unreadable(
    redis_server, write_config, exporter_client
):
    r = redis.Redis.from_url(redis_server.url)
    r.rpush("rq:queue:ghost", "no-such-job")  # an id whose job hash is gone
    r.hset("rq:job:odd", mapping={"enqueued_at": "yesterday", "status": "queued"})
    r.rpush("rq:queue:odd", "odd")
    r.rpush("plain", "{}", "{}")
    # A hand-configured queue on the same Redis keeps its series without a framework label.
    cfg = write_config(
        {**config(redis_server.url, queues=["nothere", "ghost", "odd"]), "queues": [{"redis": "main", "key": "plain"}]}
    )
    series = await scrape(await exporter_client(cfg))
    assert value(series, "opsloop_queue_length", redis="main", queue="plain") == 2
    n = {"redis": "main", "queue": "nothere", "framework": "rq"}
    for metric in ("opsloop_queue_length", "opsloop_queue_oldest_age_seconds", "opsloop_queue_in_progress",
                   "opsloop_queue_in_progress_overdue", "opsloop_queue_scheduled", "opsloop_queue_workers",
                   "opsloop_queue_unreadable_records"):  # fmt: skip
        assert value(series, metric, **n) == 0, metric
    assert value(series, "opsloop_dlq_length", dlq="rq:failed:nothere", **n) == 0
    assert value(series, "opsloop_dlq_oldest_age_seconds", dlq="rq:failed:nothere", **n) == 0
    for queue in ("ghost", "odd"):
        labels = {"redis": "main", "queue": queue, "framework": "rq"}
        assert value(series, "opsloop_queue_length", **labels) == 1
        assert value(series, "opsloop_queue_oldest_age_seconds", **labels) is None
        assert value(series, "opsloop_queue_unreadable_records", **labels) == 1
    assert value(series, "opsloop_source_up", source="redis/main") == 1


async def test_key_of_wrong_type_fails_the_source_not_the_exporter(redis_server, write_config, exporter_client):
    r = redis.Redis.from_url(redis_server.url)
    r.set("rq:queue:broken", "not a list")
    r.sadd("rq:queues", "rq:queue:broken")
    client = await exporter_client(write_config(config(redis_server.url)))
    series = await scrape(client)
    assert value(series, "opsloop_source_up", source="redis/main") == 0
    assert value(series, "opsloop_source_errors_total", source="redis/main") == 1
    r.delete("rq:queue:broken")
    series = await scrape(client)
    assert value(series, "opsloop_source_up", source="redis/main") == 1
    assert value(series, "opsloop_queue_length", redis="main", queue="broken", framework="rq") == 0
