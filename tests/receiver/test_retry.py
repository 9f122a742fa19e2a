"""backoff_delay: exponential growth with full jitter under the cap; a server's Retry-After wins."""

from __future__ import annotations

import pytest
from opsloop.receiver.retry import backoff_delay


@pytest.mark.parametrize("attempt", [1, 2, 3, 8])
def test_computed_delay_grows_exponentially_with_full_jitter_under_the_cap(attempt: int) -> None:
    ceiling = min(10.0, 0.5 * 2 ** (attempt - 1))
    delays = [backoff_delay(attempt, base=0.5, cap=10.0) for _ in range(200)]
    assert all(0 <= d <= ceiling for d in delays)
    assert max(delays) > ceiling / 2  # jitter spreads over the whole range, not a fixed value


def test_negative_retry_after_means_no_wait() -> None:
    assert backoff_delay(1, base=1.0, cap=60.0, retry_after=-5) == 0.0


def test_retry_after_wins_and_is_capped() -> None:
    assert backoff_delay(1, base=30.0, cap=60.0, retry_after=0.05) == 0.05
    assert backoff_delay(5, base=0.001, cap=60.0, retry_after=3) == 3
    assert backoff_delay(1, base=0.001, cap=0.05, retry_after=3600) == 0.05
