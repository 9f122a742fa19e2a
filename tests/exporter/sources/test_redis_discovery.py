"""KeyDiscovery against a real Redis: the cap exactly at its limit, vanished keys, failures, shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from opsloop.exporter.config import RedisConfig
from opsloop.exporter.sources import redis_discovery
from opsloop.exporter.sources.redis_discovery import KeyDiscovery
from opsloop.testsupport.servers import LOOPBACK, RedisServer, free_port
from redis.asyncio import Redis


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[Redis]:
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    yield redis
    await redis.aclose()


def discovery(url: str, **settings: object) -> KeyDiscovery:
    return KeyDiscovery(RedisConfig(name="main", url=url, **settings), "jobs:*")  # type: ignore[arg-type]


async def rescan(found: KeyDiscovery, client: Redis) -> list[str]:
    """Run one rescan to its end (a due rescan starts in the background; wait for that task)."""
    keys = await found.current(client)
    if found._refresh is not None:
        await found._refresh
    return keys


def test_a_new_discovery_knows_nothing_and_reports_no_truncation(redis_server: RedisServer) -> None:
    fresh = discovery(redis_server.url)
    assert (fresh.keys, fresh.truncated, fresh.last_error) == ([], False, "")
    (sample,) = fresh.samples()
    assert (sample.metric.name, sample.value) == ("opsloop_keys_truncated", 0.0)
    assert sample.metric.help == "1 when SCAN discovery of the pattern stopped at max_keys_per_pattern, else 0."


async def test_exactly_max_keys_is_not_truncated_and_one_more_is(
    client: Redis, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    await client.rpush("jobs:c", "x")
    await client.rpush("jobs:a", "x")
    await client.rpush("jobs:b", "x")
    await client.set("other", "1")
    found = discovery(redis_server.url, max_keys_per_pattern=3, discovery_interval="1h")
    assert await found.current(client) == ["jobs:a", "jobs:b", "jobs:c"]
    assert [s.value for s in found.samples()] == [0.0]
    await client.rpush("jobs:0", "x")
    capped = discovery(redis_server.url, max_keys_per_pattern=3, discovery_interval="1h")
    assert await capped.current(client) == ["jobs:0", "jobs:a", "jobs:b"]  # the first names, always the same
    (sample,) = capped.samples()
    assert (sample.metric.name, sample.labels, sample.value) == ("opsloop_keys_truncated", ("main", "jobs:*"), 1.0)
    (record,) = [r for r in caplog.records if r.getMessage() == "key discovery truncated"]
    assert (record.pattern, record.max_keys) == ("jobs:*", 3)


async def test_found_keys_win_over_vanished_ones_at_the_cap(client: Redis, redis_server: RedisServer) -> None:
    await client.rpush("jobs:a", "x")
    await client.rpush("jobs:b", "x")
    found = discovery(redis_server.url, max_keys_per_pattern=2, discovery_interval="0s", forget_after="1h")
    assert await rescan(found, client) == ["jobs:a", "jobs:b"]
    await client.delete("jobs:a")  # drained; still remembered for forget_after
    await client.rpush("jobs:c", "x")
    await rescan(found, client)
    assert found.keys == ["jobs:b", "jobs:c"]  # the vanished key gives way to the one Redis holds
    assert found.truncated is False


async def test_first_scan_failure_raises_and_a_later_one_keeps_the_list(
    client: Redis, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    dead = Redis(host=LOOPBACK, port=free_port(), socket_connect_timeout=1)  # nothing listens there
    never = discovery(redis_server.url)
    with pytest.raises(ConnectionError, match=r"^discovery of 'jobs:\*' failed: .+"):
        await never.current(dead)
    await dead.aclose()
    (record,) = [r for r in caplog.records if r.getMessage() == "key discovery failed"]
    assert (record.pattern, record.error) == ("jobs:*", never.last_error)
    assert never.last_error.startswith("Error 111 connecting to")  # the error itself, not only its type

    await client.rpush("jobs:a", "x")
    found = discovery(redis_server.url, discovery_interval="0s")
    assert await rescan(found, client) == ["jobs:a"]
    redis_server.kill()
    assert await rescan(found, client) == ["jobs:a"]  # the failed rescan keeps what it knew
    assert found.keys == ["jobs:a"]
    assert found.last_error != ""


async def test_close_cancels_a_running_rescan(client: Redis, redis_server: RedisServer) -> None:
    await client.rpush("jobs:a", "x")
    found = discovery(redis_server.url, discovery_interval="0s")
    await rescan(found, client)
    redis_server.pause()  # the next rescan hangs in SCAN
    await found.current(client)
    refresh = found._refresh
    assert refresh is not None
    assert not refresh.done()
    found.close()
    with pytest.raises(asyncio.CancelledError):
        await refresh
    redis_server.resume()


async def test_a_hung_scan_times_out_and_names_the_timeout(
    client: Redis, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timeout carries no message: the error names its type, so the raised error is never blank."""
    monkeypatch.setattr(redis_discovery, "SCAN_TIMEOUT", 0.5)  # the real 60 s would hold the test a minute
    await client.ping()  # connected before the pause: the scan itself hangs, not the connect
    redis_server.pause()
    try:
        with pytest.raises(ConnectionError, match=r"^discovery of 'jobs:\*' failed: TimeoutError$"):
            await discovery(redis_server.url).current(client)
    finally:
        redis_server.resume()


async def test_scan_asks_for_a_thousand_keys_per_call(client: Redis, redis_server: RedisServer) -> None:
    pipe = client.pipeline(transaction=False)
    for n in range(2500):
        pipe.rpush(f"jobs:{n}", "x")
    await pipe.execute()
    before = (await client.info("commandstats")).get("cmdstat_scan", {}).get("calls", 0)
    found = discovery(redis_server.url, max_keys_per_pattern=5000)
    assert await found.current(client) == sorted(f"jobs:{n}" for n in range(2500))
    calls = (await client.info("commandstats"))["cmdstat_scan"]["calls"] - before
    assert 3 <= calls < 10  # COUNT 1000: a few calls; Redis' default COUNT of 10 would take hundreds


class Clock:
    """The discovery's monotonic clock, set by the test: ages of vanished keys become exact."""

    def __init__(self, now: float) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fixed = Clock(1000.0)
    monkeypatch.setattr(redis_discovery, "time", fixed)
    return fixed


async def test_a_vanished_key_stays_listed_for_forget_after_from_the_last_scan_that_found_it(
    client: Redis, redis_server: RedisServer, clock: Clock
) -> None:
    await client.rpush("jobs:a", "x")
    await client.rpush("jobs:b", "x")
    found = discovery(redis_server.url, discovery_interval="0s", forget_after="15s")
    await rescan(found, client)
    assert found.keys == ["jobs:a", "jobs:b"]
    await client.delete("jobs:a")  # last found by the scan at 1000
    await client.rpush("jobs:c", "x")
    both = ["jobs:a", "jobs:b", "jobs:c"]
    for now, expected in ((1010.0, both), (1015.0, both), (1015.5, ["jobs:b", "jobs:c"])):
        clock.now = now
        await rescan(found, client)
        assert (now, found.keys) == (now, expected)
    await client.rpush("jobs:a", "x")  # back: found again, and forgotten only forget_after after a later miss
    clock.now = 1020.0
    await rescan(found, client)
    await client.delete("jobs:a")
    clock.now = 1030.0
    await rescan(found, client)
    assert found.keys == both
    assert found.last_error == ""


async def test_a_rescan_is_due_once_the_interval_has_passed_and_not_before(
    client: Redis, redis_server: RedisServer, clock: Clock
) -> None:
    await client.rpush("jobs:a", "x")
    found = discovery(redis_server.url, discovery_interval="10s")
    await rescan(found, client)
    scans = (await client.info("commandstats"))["cmdstat_scan"]["calls"]  # Redis counts each SCAN call
    clock.now = 1009.5
    await rescan(found, client)
    assert (await client.info("commandstats"))["cmdstat_scan"]["calls"] == scans
    clock.now = 1010.0
    await rescan(found, client)
    assert (await client.info("commandstats"))["cmdstat_scan"]["calls"] == scans + 1


def test_sort_unique_sorts_in_place_and_drops_repeats() -> None:
    """SCAN may return a key twice (while Redis resizes its table): the helper that drops the repeats."""
    keys = ["jobs:b", "jobs:a", "jobs:b", "jobs:c", "jobs:a"]
    same = keys
    redis_discovery._sort_unique(keys)
    assert same is keys
    assert keys == ["jobs:a", "jobs:b", "jobs:c"]
    single = ["jobs:b", "jobs:a"]
    redis_discovery._sort_unique(single)
    assert single == ["jobs:a", "jobs:b"]
