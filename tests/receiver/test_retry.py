"""with_backoff: transient errors are retried, Retry-After wins, permanent errors and cancellation stop."""

from __future__ import annotations

import asyncio
import time

import pytest
from opsloop.receiver.notify import PermanentError, TransientError
from opsloop.receiver.retry import backoff_delay, with_backoff


class Flaky:
    """Raises the queued errors in order, then returns "done"; counts its calls."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


async def test_transient_errors_are_retried_until_success() -> None:
    call = Flaky(TransientError("a"), TransientError("b"))
    assert await with_backoff(call, attempts=5, base=0.001) == "done"
    assert call.calls == 3


async def test_retry_after_wins_over_a_long_computed_delay() -> None:
    call = Flaky(TransientError("429", retry_after=0.05))
    started = time.monotonic()
    assert await with_backoff(call, base=30.0) == "done"
    assert time.monotonic() - started < 1.0
    assert call.calls == 2


async def test_retry_after_wins_over_a_short_computed_delay() -> None:
    call = Flaky(TransientError("429", retry_after=0.3))
    started = time.monotonic()
    assert await with_backoff(call, base=0.001) == "done"
    assert time.monotonic() - started >= 0.3


async def test_retry_after_is_capped() -> None:
    call = Flaky(TransientError("429", retry_after=3600))
    started = time.monotonic()
    assert await with_backoff(call, base=0.001, cap=0.05) == "done"
    assert time.monotonic() - started < 1.0


async def test_permanent_error_stops_at_once() -> None:
    call = Flaky(TransientError("first"), PermanentError("bad payload"), TransientError("never reached"))
    with pytest.raises(PermanentError, match="bad payload"):
        await with_backoff(call, attempts=5, base=0.001)
    assert call.calls == 2


async def test_other_exceptions_are_not_retried() -> None:
    call = Flaky(KeyError("bug"))
    with pytest.raises(KeyError):
        await with_backoff(call, base=0.001)
    assert call.calls == 1


async def test_last_transient_error_propagates_when_attempts_are_used_up() -> None:
    call = Flaky(*(TransientError(f"try {i}") for i in range(1, 6)))
    with pytest.raises(TransientError, match="try 3"):
        await with_backoff(call, attempts=3, base=0.001)
    assert call.calls == 3


async def test_cancellation_during_the_wait_propagates() -> None:
    call = Flaky(TransientError("slow down", retry_after=30))
    task = asyncio.create_task(with_backoff(call, base=0.001))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert call.calls == 1


async def test_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="attempts"):
        await with_backoff(Flaky(), attempts=0)


@pytest.mark.parametrize("attempt", [1, 2, 3, 8])
def test_computed_delay_grows_exponentially_with_full_jitter_under_the_cap(attempt: int) -> None:
    ceiling = min(10.0, 0.5 * 2 ** (attempt - 1))
    delays = [backoff_delay(attempt, base=0.5, cap=10.0) for _ in range(200)]
    assert all(0 <= d <= ceiling for d in delays)
    assert max(delays) > ceiling / 2  # jitter spreads over the whole range, not a fixed value


def test_negative_retry_after_means_no_wait() -> None:
    assert backoff_delay(1, base=1.0, cap=60.0, retry_after=-5) == 0.0
