"""The rate limit's token bucket against a clock the test moves: golang.org/x/time/rate's Allow."""

from __future__ import annotations

from opsloop.ratelimit import TokenBucket


def test_burst_then_one_token_per_interval() -> None:
    now = [100.0]
    bucket = TokenBucket(interval=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]
    now[0] += 1.0  # half a token
    assert not bucket.allow()
    now[0] += 1.0  # one token
    assert [bucket.allow(), bucket.allow()] == [True, False]
    now[0] += 3600.0  # a long pause refills up to the burst, never beyond
    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]
