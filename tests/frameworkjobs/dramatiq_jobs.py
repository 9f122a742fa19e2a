"""Dramatiq actors the tests' real workers import (as ``dramatiq_jobs``)."""

from __future__ import annotations

import os
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker

dramatiq.set_broker(RedisBroker(url=os.environ["OPSLOOP_TEST_REDIS_URL"]))


@dramatiq.actor(max_retries=0)
def fail(reason: str = "planned failure") -> None:
    raise RuntimeError(reason)


@dramatiq.actor(max_retries=0)
def succeed(value: int = 0) -> int:
    return value


@dramatiq.actor(max_retries=0, time_limit=600_000, queue_name="slow")
def sleep(seconds: float) -> None:
    time.sleep(seconds)


@dramatiq.actor(max_retries=0)
def flaky(name: str) -> None:
    """Fails until the test sets ``fixed``; then records that it ran."""
    db = dramatiq.get_broker().client  # type: ignore[attr-defined]
    if not db.exists("fixed"):
        raise RuntimeError("not fixed yet")
    db.sadd("done", name)
