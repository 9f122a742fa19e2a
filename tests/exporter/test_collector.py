"""The scrape deadline, dead and blackholed sources, single-flight and the circuit breaker."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
import redis
import redis.asyncio
from opsloop.exporter.sources.base import CircuitBreaker
from opsloop.testsupport.servers import RedisServer

from tests.exporter.scrapes import ExporterClient, scrape, timed_scrape, value


def one_queue_config(url: str, **scrape_cfg: object) -> dict[str, object]:
    """One Redis, ``main``, with one queue, ``emails`` at ``queue:emails``."""
    return {
        "scrape": scrape_cfg,
        "redis": [{"name": "main", "url": url}],
        "queues": [{"name": "emails", "redis": "main", "key": "queue:emails"}],
    }


def two_redis_config(good: str, bad: str, **scrape_cfg: object) -> dict[str, object]:
    return {
        "scrape": scrape_cfg,
        "redis": [{"name": "good", "url": good}, {"name": "bad", "url": bad}],
        "queues": [
            {"name": "emails", "redis": "good", "key": "queue:emails"},
            {"name": "stuck", "redis": "bad", "key": "queue:stuck"},
        ],
    }


async def read_failure(caplog: pytest.LogCaptureFixture, source: str) -> str:
    """The error the collector logged for ``source``; the read may finish just after the scrape answered."""
    for _ in range(200):
        errors = [r.error for r in caplog.records if r.getMessage() == "source read failed" and r.source == source]
        if errors:
            return errors[-1]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no failed read of {source} was logged")


def requests_handled(client: ExporterClient) -> Callable[[int], Awaitable[None]]:
    """Wait until the exporter has begun handling ``count`` more requests and their reads are in flight."""
    server = client.server  # the server counts every request it begins handling
    before = server.requests_count

    async def wait(count: int) -> None:
        for _ in range(500):
            if server.requests_count - before >= count:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError(f"{count} requests never reached the exporter")
        for _ in range(10):  # each source read is a task of its own: a few loop turns, no I/O, to start
            await asyncio.sleep(0)

    return wait


async def test_blackholed_redis_costs_the_deadline_not_the_scrape(write_config, exporter_client, caplog):
    with RedisServer() as good, RedisServer() as bad:
        redis.Redis.from_url(good.url).lpush("queue:emails", "a", "b")
        client = await exporter_client(write_config(two_redis_config(good.url, bad.url)))
        assert value(await scrape(client), "opsloop_source_up", source="redis/bad") == 1
        bad.pause()  # SIGSTOP: the socket stays open but nothing answers
        try:
            started = time.monotonic()
            series = await scrape(client, timeout=2)
            elapsed = time.monotonic() - started
        finally:
            bad.resume()
    # the budget is Prometheus' 2 s timeout minus the 0.5 s margin, read from what the collector logged
    assert await read_failure(caplog, "redis/bad") == "no answer within 1.50s"
    assert not [r for r in caplog.records if r.getMessage().startswith("duplicate series")]  # a failed read drops none
    assert elapsed < 2.0  # answered before Prometheus gives up
    assert value(series, "opsloop_source_up", source="redis/bad") == 0
    assert value(series, "opsloop_queue_length", redis="bad", queue="stuck") is None
    assert value(series, "opsloop_source_up", source="redis/good") == 1
    assert value(series, "opsloop_queue_length", redis="good", queue="emails") == 2
    assert value(series, "opsloop_source_errors_total", source="redis/bad") == 1


async def test_redis_killed_then_restarted_comes_back(write_config, exporter_client, caplog):
    with RedisServer() as server:
        redis.Redis.from_url(server.url).lpush("queue:emails", "a")
        cfg = write_config(one_queue_config(server.url, breaker_failures=1, breaker_max_backoff="1s"))
        client = await exporter_client(cfg)
        assert value(await scrape(client), "opsloop_queue_length", redis="main", queue="emails") == 1
        server.kill()
        # A pause is capped at half the time since the previous scrape. Waiting 2.2 s makes this one
        # the full first pause, 0.5 to 1 s, so the scrape after it still finds the breaker open.
        await asyncio.sleep(2.2)
        started = time.monotonic()
        series = await scrape(client, timeout=5)
        assert time.monotonic() - started < 1.0  # connection refused is fast: no waiting for the deadline
        assert value(series, "opsloop_source_up", source="redis/main") == 0
        assert value(series, "opsloop_queue_length", redis="main", queue="emails") is None
        assert value(series, "opsloop_source_errors_total", source="redis/main") == 1
        assert value(series, "opsloop_source_breaker_open", source="redis/main") == 1
        # the breaker is open now, for at least 0.5 s from the failure, which came after `started`:
        # a scrape within that does not even try
        series = await scrape(client, timeout=5)
        if time.monotonic() - started < 0.5:  # always, unless the machine stalled this test that long
            assert value(series, "opsloop_source_breaker_open", source="redis/main") == 1
            assert value(series, "opsloop_source_errors_total", source="redis/main") == 1
        async with redis.asyncio.Redis.from_url(server.url) as probe:  # the oracle: redis-py's own error
            with pytest.raises(redis.ConnectionError) as refused:
                await probe.ping()
        assert await read_failure(caplog, "redis/main") == str(refused.value)  # its message, not a class name
        server.start()
        redis.Redis.from_url(server.url).lpush("queue:emails", "x", "y", "z")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            series = await scrape(client, timeout=5)
            if value(series, "opsloop_source_up", source="redis/main") == 1:
                break
            await asyncio.sleep(0.2)
    assert value(series, "opsloop_source_up", source="redis/main") == 1
    assert value(series, "opsloop_queue_length", redis="main", queue="emails") == 3
    assert value(series, "opsloop_source_breaker_open", source="redis/main") == 0


async def test_concurrent_scrapes_share_one_read(redis_server, write_config, exporter_client):
    r = redis.Redis.from_url(redis_server.url)
    r.lpush("queue:emails", "a")
    cfg = write_config(one_queue_config(redis_server.url))
    client = await exporter_client(cfg)
    await scrape(client)
    llen_before = r.info("commandstats")["cmdstat_llen"]["calls"]
    redis_server.pause()  # hold the read in flight while ten scrapes arrive
    arrived = requests_handled(client)
    scrapes = [asyncio.create_task(scrape(client, timeout=3)) for _ in range(10)]
    await arrived(10)
    redis_server.resume()
    results = await asyncio.gather(*scrapes)
    assert all(value(s, "opsloop_queue_length", redis="main", queue="emails") == 1 for s in results)
    assert r.info("commandstats")["cmdstat_llen"]["calls"] - llen_before == 1


def test_breaker_opens_after_threshold_and_closes_on_success():
    breaker = CircuitBreaker(failures=2, max_backoff=30)
    breaker.record_failure()
    assert not breaker.is_open
    breaker.record_failure()
    assert breaker.is_open
    assert 0.5 <= breaker.open_until - time.monotonic() <= 1.0  # first pause: 1 s with jitter
    breaker.record_failure()
    assert 1.0 <= breaker.open_until - time.monotonic() <= 2.0  # doubled
    for _ in range(20):
        breaker.record_failure()
    assert breaker.open_until - time.monotonic() <= 30.0  # capped
    breaker.record_success()
    assert not breaker.is_open
    assert breaker.consecutive_failures == 0


async def test_redis_killed_during_a_scrape_answers_in_time(write_config, exporter_client):
    with RedisServer() as server:
        redis.Redis.from_url(server.url).lpush("queue:emails", "a", "b")
        cfg = write_config(one_queue_config(server.url))
        client = await exporter_client(cfg)
        assert value(await scrape(client), "opsloop_source_up", source="redis/main") == 1
        server.pause()  # the next scrape's read hangs ...
        started = time.monotonic()
        arrived = requests_handled(client)
        pending = asyncio.create_task(scrape(client, timeout=3))
        await arrived(1)
        server.kill()  # ... and Redis dies under it
        series = await pending
        assert time.monotonic() - started < 3.0
        assert value(series, "opsloop_source_up", source="redis/main") == 0
        assert value(series, "opsloop_queue_length", redis="main", queue="emails") is None


async def test_exporter_starts_and_serves_with_redis_down(write_config, exporter_client):
    server = RedisServer()  # not started: nothing listens on its port yet
    try:
        cfg = write_config(one_queue_config(server.url, breaker_failures=100))
        client = await exporter_client(cfg)
        assert (await client.get("/-/ready")).status == 200
        series = await scrape(client, timeout=3)
        assert value(series, "opsloop_source_up", source="redis/main") == 0
        assert value(series, "opsloop_exporter_build_info", version="0.1.0") == 1
        server.start()
        series = await scrape(client, timeout=3)
        assert value(series, "opsloop_source_up", source="redis/main") == 1
        assert value(series, "opsloop_queue_length", redis="main", queue="emails") == 0
    finally:
        server.cleanup()


async def test_a_source_down_from_the_first_scrape_opens_its_breaker(write_config, exporter_client):
    """The first failure has no earlier scrape to cap its pause by: the pause is the breaker's own."""
    server = RedisServer()  # never started: nothing listens on its port
    try:
        cfg = write_config(one_queue_config(server.url, breaker_failures=1))
        series = await scrape(await exporter_client(cfg), timeout=3)
        assert value(series, "opsloop_source_up", source="redis/main") == 0
        assert value(series, "opsloop_source_errors_total", source="redis/main") == 1
        assert value(series, "opsloop_source_breaker_open", source="redis/main") == 1
    finally:
        server.cleanup()


async def test_recovered_redis_is_up_on_the_next_scrape(write_config, exporter_client):
    """However long Redis was down, the breaker's pause stays under the scrape interval."""
    with RedisServer() as server:
        cfg = write_config(one_queue_config(server.url, breaker_failures=1))  # default breaker_max_backoff: 30s
        client = await exporter_client(cfg)
        interval = 0.5
        assert value(await scrape(client), "opsloop_source_up", source="redis/main") == 1
        server.kill()
        starts = [time.monotonic()]
        errors = [0.0]
        for _ in range(16):  # 8 s down: unbounded, the pause would have grown to 8-16 s
            await asyncio.sleep(interval)
            starts.append(time.monotonic())
            series = await scrape(client, timeout=5)
            assert value(series, "opsloop_source_up", source="redis/main") == 0
            errors.append(value(series, "opsloop_source_errors_total", source="redis/main") or 0.0)
        # A pause stays under half the time between the two scrapes before it, so a scrape that comes at
        # least that long after the last one tries once more: one more error each time. (A stalled test
        # loop can make one gap much shorter than the one before; such a scrape may find the breaker open.)
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        tried = [i for i in range(2, len(gaps)) if gaps[i] > 0.6 * gaps[i - 1] + 0.05]
        assert len(tried) >= 8, gaps
        assert all(errors[i + 1] - errors[i] == 1 for i in tried), (errors, gaps)
        server.start()
        await asyncio.sleep(interval)
        series = await scrape(client, timeout=5)
    assert value(series, "opsloop_source_up", source="redis/main") == 1
    assert value(series, "opsloop_source_breaker_open", source="redis/main") == 0


async def test_a_good_read_publishes_when_it_ended_and_how_long_it_took(redis_server, write_config, exporter_client):
    cfg = write_config(one_queue_config(redis_server.url))
    client = await exporter_client(cfg)
    for _ in range(2):  # the second good read replaces the first's figures
        before, series, after = await timed_scrape(client)
        assert before <= value(series, "opsloop_source_last_success_timestamp_seconds", source="redis/main") <= after
        duration = value(series, "opsloop_source_scrape_duration_seconds", source="redis/main")
        assert duration is not None
        assert 0 < duration <= after - before


async def test_a_read_still_in_flight_publishes_no_duration_and_no_last_success(
    redis_server, write_config, exporter_client
):
    """A source never read to the end has no figures yet: no series, rather than a made-up zero."""
    cfg = write_config(one_queue_config(redis_server.url))
    client = await exporter_client(cfg)
    redis_server.pause()
    arrived = requests_handled(client)
    patient = asyncio.create_task(scrape(client, timeout=10))  # starts the read, waits up to 9.5 s
    try:
        await arrived(1)
        hurried = await scrape(client, timeout=1)  # shares that read and gives up after 0.5 s
    finally:
        redis_server.resume()
    assert value(hurried, "opsloop_source_up", source="redis/main") == 0
    assert value(hurried, "opsloop_source_scrape_duration_seconds", source="redis/main") is None
    assert value(hurried, "opsloop_source_last_success_timestamp_seconds", source="redis/main") is None
    assert value(hurried, "opsloop_source_errors_total", source="redis/main") == 0  # the read has not failed
    finished = await patient
    assert value(finished, "opsloop_source_up", source="redis/main") == 1
    assert value(finished, "opsloop_source_scrape_duration_seconds", source="redis/main") > 0


async def test_a_queue_configured_twice_is_published_once_and_the_drop_logged(
    redis_server, write_config, exporter_client, caplog
):
    redis.Redis.from_url(redis_server.url).lpush("queue:emails", "a", "b")
    entry = {"name": "emails", "redis": "main", "key": "queue:emails"}
    client = await exporter_client(write_config({"redis": [{"name": "main", "url": redis_server.url}],
                                                 "queues": [entry, entry]}))  # fmt: skip
    caplog.set_level(logging.WARNING)
    series = await scrape(client)
    assert value(series, "opsloop_queue_length", redis="main", queue="emails") == 2
    published = [labels for _, labels in series if ("queue", "emails") in labels]
    (record,) = [r for r in caplog.records if r.getMessage().startswith("duplicate series")]
    assert record.getMessage() == "duplicate series dropped; check for keys configured twice"
    assert record.series == len(published)  # the second entry repeats every series of the first


async def test_closing_the_exporter_while_a_read_hangs_ends_the_read(redis_server, write_config, exporter_client):
    cfg = write_config(one_queue_config(redis_server.url))
    client = await exporter_client(cfg)
    redis_server.pause()
    try:
        arrived = requests_handled(client)
        pending = asyncio.create_task(scrape(client, timeout=10))
        await arrived(1)
        started = time.monotonic()
        await client.server.cleanup()  # cancels the read in flight and waits for it: no error escapes
        assert time.monotonic() - started < 2.0  # not the 9.5 s the read had left
        with pytest.raises(aiohttp.ClientError):
            await pending  # the scrape's connection was closed under it
    finally:
        redis_server.resume()
