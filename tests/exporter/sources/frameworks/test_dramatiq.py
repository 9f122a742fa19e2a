"""Dramatiq queues read by the exporter, compared with Dramatiq's broker while real workers run and die."""

from __future__ import annotations

import time

import pytest
import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker

from tests.exporter.scrapes import scrape, value
from tests.frameworkjobs.workers import wait_for

pytestmark = pytest.mark.slow


def message(queue: str, actor: str, *args: object, seconds_ago: float = 0.0) -> Message:
    """A message as Dramatiq builds it, created ``seconds_ago`` (a controlled enqueue time)."""
    stamp = int((time.time() - seconds_ago) * 1000)
    return Message(queue_name=queue, actor_name=actor, args=args, kwargs={}, options={}, message_timestamp=stamp)


async def test_every_series_matches_dramatiq_including_after_sigkill(
    redis_server, workers, write_config, exporter_client
):
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    broker = RedisBroker(url=redis_server.url)
    for reason in ("a", "b"):
        broker.enqueue(message("default", "fail", reason))
    first = workers.start("dramatiq", "dramatiq_jobs", "--processes", "1", "--threads", "1", "--queues", "default")
    wait_for(lambda: r.zcard("dramatiq:default.XQ") == 2, what="two dead letters")
    first.terminate()
    first.wait(30)
    broker.enqueue(message("slow", "sleep", 120))
    slow = workers.start("dramatiq", "dramatiq_jobs", "--processes", "1", "--threads", "1", "--queues", "slow")
    wait_for(lambda: r.llen("dramatiq:slow") == 0 and r.hlen("dramatiq:slow.msgs") == 1, what="the slow job")
    # Controlled times: the oldest dead letter 200 s ago, the oldest waiting message created 100 s ago.
    stamped = time.time()
    oldest_dead = r.zrange("dramatiq:default.XQ", 0, 0)[0]
    r.zadd("dramatiq:default.XQ", {oldest_dead: (time.time() - 200) * 1000})
    broker.enqueue(message("default", "succeed", 1, seconds_ago=100))
    broker.enqueue(message("default", "succeed", 2, seconds_ago=50))
    broker.enqueue(message("default", "succeed", 3), delay=3_600_000)

    entry = {"redis": "main", "kind": "dramatiq", "namespace": "dramatiq"}
    cfg = write_config({"redis": [{"name": "main", "url": redis_server.url}], "frameworks": [entry]})
    client = await exporter_client(cfg)
    series = await scrape(client)
    late = time.time() - stamped
    d = {"redis": "main", "queue": "default", "framework": "dramatiq"}
    s = {"redis": "main", "queue": "slow", "framework": "dramatiq"}
    dlq = {"dlq": "dramatiq:default.XQ", **d}
    assert value(series, "opsloop_queue_length", **d) == 2
    assert 100 <= value(series, "opsloop_queue_oldest_age_seconds", **d) <= 100 + late
    assert value(series, "opsloop_queue_scheduled", **d) == 1
    assert value(series, "opsloop_queue_in_progress", **d) == 0
    # The broker's own size: waiting, fetched and delayed messages of the queue together.
    assert broker.do_qsize("default") == 3
    assert broker.do_qsize("slow") == 1
    assert value(series, "opsloop_dlq_length", **dlq) == 2
    assert 200 <= value(series, "opsloop_dlq_oldest_age_seconds", **dlq) <= 200 + late
    assert value(series, "opsloop_queue_length", **s) == 0
    assert value(series, "opsloop_queue_in_progress", **s) == 1
    assert value(series, "opsloop_queue_workers", **s) is None  # Dramatiq keeps no workers per queue
    assert value(series, "opsloop_queue_unreadable_records", **d) == 0

    workers.kill(slow)
    series = await scrape(client)
    assert broker.do_qsize("slow") == 1
    assert value(series, "opsloop_queue_in_progress", **s) == 1  # held for the dead worker until maintenance
    assert value(series, "opsloop_queue_length", **s) == 0


async def test_missing_queue_reads_zero_and_foreign_bodies_count_as_unreadable(
    redis_server, write_config, exporter_client
):
    r = redis.Redis.from_url(redis_server.url)
    r.rpush("dramatiq:odd", "m1")
    r.hset("dramatiq:odd.msgs", "m1", "not json")
    r.set("dramatiq:broken", "not a list")
    entry = {"redis": "main", "kind": "dramatiq", "queues": ["nothere", "odd"]}
    cfg = write_config({"redis": [{"name": "main", "url": redis_server.url}], "frameworks": [entry]})
    client = await exporter_client(cfg)
    series = await scrape(client)
    n = {"redis": "main", "queue": "nothere", "framework": "dramatiq"}
    for metric in ("opsloop_queue_length", "opsloop_queue_oldest_age_seconds", "opsloop_queue_in_progress",
                   "opsloop_queue_scheduled", "opsloop_queue_unreadable_records"):  # fmt: skip
        assert value(series, metric, **n) == 0, metric
    assert value(series, "opsloop_dlq_length", dlq="dramatiq:nothere.XQ", **n) == 0
    odd = {"redis": "main", "queue": "odd", "framework": "dramatiq"}
    assert value(series, "opsloop_queue_length", **odd) == 1
    assert value(series, "opsloop_queue_oldest_age_seconds", **odd) is None
    assert value(series, "opsloop_queue_unreadable_records", **odd) == 1
    bad = {"redis": "main", "kind": "dramatiq", "queues": ["broken"]}
    cfg = write_config({"redis": [{"name": "main", "url": redis_server.url}], "frameworks": [bad]})
    series = await scrape(await exporter_client(cfg))
    assert value(series, "opsloop_source_up", source="redis/main") == 0
