"""Backoff for notifier deliveries: exponential with full jitter, a server's Retry-After winning.

Notifiers make one attempt and classify failures; the worker releases a failed delivery until the delay
computed here (a durable retry), so no retry ever waits inside a worker. A server's Retry-After beats the
computed delay (Slack's 429 says exactly when it will accept the next message).
"""

from __future__ import annotations

import random


def backoff_delay(attempt: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based), never more than ``cap``."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), cap)
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))
