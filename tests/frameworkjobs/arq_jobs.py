"""arq functions and worker settings the tests' real workers import (as ``arq_jobs``)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from arq.connections import RedisSettings


async def succeed(ctx: dict[str, Any], value: int = 0) -> int:
    return value


async def sleep(ctx: dict[str, Any], seconds: float) -> None:
    await asyncio.sleep(seconds)


class SlowWorkerSettings:
    """A worker for the ``arq:slow`` queue only."""

    functions = [succeed, sleep]
    queue_name = "arq:slow"
    job_timeout = 600
    redis_settings = RedisSettings.from_dsn(os.environ["OPSLOOP_TEST_REDIS_URL"])
