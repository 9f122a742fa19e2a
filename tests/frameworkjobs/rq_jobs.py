"""RQ job functions the tests' real workers import (as ``rq_jobs``)."""

from __future__ import annotations

import os
import time


def succeed(value: int = 0) -> int:
    return value


def fail(reason: str = "planned failure") -> None:
    raise RuntimeError(reason)


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def flaky(name: str) -> str:
    """Fails until the test sets ``fixed``; then records that it ran."""
    from redis import Redis

    db = Redis.from_url(os.environ["OPSLOOP_TEST_REDIS_URL"])
    if not db.exists("fixed"):
        raise RuntimeError("not fixed yet")
    db.sadd("done", name)
    return name
