"""RQ job functions the tests' real workers import (as ``rq_jobs``)."""

from __future__ import annotations

import time


def succeed(value: int = 0) -> int:
    return value


def fail(reason: str = "planned failure") -> None:
    raise RuntimeError(reason)


def sleep(seconds: float) -> None:
    time.sleep(seconds)
