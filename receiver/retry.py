"""The receiver's only retry loop: exponential backoff with full jitter for notifier deliveries.

Notifiers make one attempt and classify failures; this loop decides when to try again. A server's
Retry-After beats the computed delay (Slack's 429 says exactly when it will accept the next message).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from opsloop.receiver.notify.base import TransientError

T = TypeVar("T")

log = logging.getLogger(__name__)


def backoff_delay(attempt: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based), never more than ``cap``."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), cap)
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))


async def with_backoff(call: Callable[[], Awaitable[T]], attempts: int = 5, base: float = 1.0, cap: float = 60.0) -> T:
    """Await ``call()`` until it succeeds, retrying TransientError up to ``attempts`` tries in total.

    PermanentError, any other exception and cancellation propagate at once; the last TransientError
    propagates when the attempts are used up.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    attempt = 1
    while True:
        try:
            return await call()
        except TransientError as exc:
            if attempt >= attempts:
                raise
            delay = backoff_delay(attempt, base, cap, exc.retry_after)
            log.info(
                "transient failure, retrying",
                extra={"attempt": attempt, "delay_seconds": round(delay, 3), "error": str(exc)},
            )
            await asyncio.sleep(delay)
            attempt += 1
