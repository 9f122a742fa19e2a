"""Celery queues (kombu's Redis transport) read by the exporter, compared with kombu and Celery's own API."""

from __future__ import annotations

import time

import pytest
import redis
from celery import Celery

from tests.exporter.scrapes import scrape, value
from tests.frameworkjobs.workers import wait_for

pytestmark = pytest.mark.slow


def kombu_size(app: Celery, queue: str) -> int:
    """The queue's message count as kombu's Redis channel reports it (all priority lists)."""
    with app.connection_for_write() as connection:
        return connection.default_channel.queue_declare(queue=queue).message_count


def config(url: str, queues: list[str]) -> dict[str, object]:
    entry = {"redis": "main", "kind": "celery", "queues": queues}
    return {"redis": [{"name": "main", "url": url}], "frameworks": [entry]}


async def test_every_series_matches_celery_including_after_sigkill(
    redis_server, workers, write_config, exporter_client
):
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    app = Celery("producer", broker=redis_server.url)
    for priority in (0, 0, 5, 9):  # kombu splits one queue into a list per priority step
        app.send_task("celery_jobs.succeed", queue="celery", priority=priority)
    app.send_task("celery_jobs.sleep", args=(120,), queue="slow")
    app.send_task("celery_jobs.sleep", args=(1,), queue="slow", countdown=3600)
    worker = workers.start(
        "celery", "-A", "celery_jobs", "worker", "-Q", "slow", "--pool", "threads", "--concurrency", "2",
        "--without-gossip", "--without-mingle", "--loglevel", "INFO",
    )  # fmt: skip
    inspect = app.control.inspect(timeout=1.0)
    wait_for(lambda: (inspect.active() or {}) and (inspect.scheduled() or {}), what="the worker's running task")
    (active,) = (inspect.active() or {}).values()
    (scheduled,) = (inspect.scheduled() or {}).values()

    client = await exporter_client(write_config(config(redis_server.url, ["celery", "slow", "nothere"])))
    series = await scrape(client)
    c = {"redis": "main", "queue": "celery", "framework": "celery"}
    s = {"redis": "main", "queue": "slow", "framework": "celery"}
    assert value(series, "opsloop_queue_length", **c) == kombu_size(app, "celery") == 4
    assert value(series, "opsloop_queue_in_progress", **c) == 0
    assert value(series, "opsloop_queue_length", **s) == kombu_size(app, "slow") == 0
    assert value(series, "opsloop_queue_in_progress", **s) == len(active) == 1
    assert value(series, "opsloop_queue_scheduled", **s) == len(scheduled) == 1
    assert value(series, "opsloop_queue_in_progress_overdue", **s) == 0
    for metric in ("opsloop_queue_length", "opsloop_queue_in_progress", "opsloop_queue_scheduled"):
        assert value(series, metric, redis="main", queue="nothere", framework="celery") == 0
    # Celery keeps no enqueue time, dead letters or worker registry in Redis: those series are left out.
    assert value(series, "opsloop_queue_oldest_age_seconds", **c) is None
    assert value(series, "opsloop_queue_workers", **s) is None
    assert not [key for key in series if key[0].startswith("opsloop_dlq")]

    workers.kill(worker)  # SIGKILL: the delivered tasks stay in kombu's unacked hash
    running_tag = active[0]["delivery_info"].get("delivery_tag") or next(
        tag for tag in r.hkeys("unacked") if active[0]["id"] in r.hget("unacked", tag)
    )
    # Time passes: the running task was delivered longer ago than the visibility timeout (1 h).
    r.zadd("unacked_index", {running_tag: time.time() - 3601}, xx=True)
    series = await scrape(client)
    assert r.hlen("unacked") == 2
    assert value(series, "opsloop_queue_in_progress", **s) == 1
    assert value(series, "opsloop_queue_scheduled", **s) == 1
    assert value(series, "opsloop_queue_in_progress_overdue", **s) == 1
    assert value(series, "opsloop_queue_unreadable_records", **s) == 0


async def test_foreign_unacked_entries_are_unreadable_and_wrong_types_fail_the_source(
    redis_server, write_config, exporter_client
):
    r = redis.Redis.from_url(redis_server.url)
    r.hset("unacked", "tag-1", "not json")
    client = await exporter_client(write_config(config(redis_server.url, ["celery"])))
    series = await scrape(client)
    assert value(series, "opsloop_queue_length", redis="main", queue="celery", framework="celery") == 0
    assert value(series, "opsloop_queue_unreadable_records", redis="main", framework="celery") == 1
    assert value(series, "opsloop_source_up", source="redis/main") == 1
    r.set("celery\x06\x163", "not a list")
    series = await scrape(client)
    assert value(series, "opsloop_source_up", source="redis/main") == 0
