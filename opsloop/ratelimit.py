"""The token bucket behind the web config file's ``rate_limit`` (golang.org/x/time/rate's ``Allow``)."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """One token every ``interval`` seconds, ``burst`` at most, full at start; a request takes one."""

    def __init__(self, interval: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def allow(self) -> bool:
        """Take a token if there is one; False means the request is refused, not delayed."""
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) / self.interval)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
