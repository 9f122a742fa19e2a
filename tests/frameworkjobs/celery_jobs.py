"""Celery tasks the tests' real workers import (as ``celery_jobs``)."""

from __future__ import annotations

import os
import time

from celery import Celery

app = Celery("celery_jobs", broker=os.environ["OPSLOOP_TEST_REDIS_URL"])
app.conf.broker_connection_retry_on_startup = True


@app.task(name="celery_jobs.succeed")
def succeed(value: int = 0) -> int:
    return value


@app.task(name="celery_jobs.sleep", acks_late=True)
def sleep(seconds: float) -> None:
    time.sleep(seconds)


@app.task(name="celery_jobs.record")
def record(name: str) -> None:
    """Records that it ran, so a test can see a requeued task complete."""
    import redis

    redis.Redis.from_url(os.environ["OPSLOOP_TEST_REDIS_URL"]).sadd("done", name)
