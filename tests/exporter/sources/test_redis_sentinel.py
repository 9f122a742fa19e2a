"""The exporter on a real Sentinel set (one primary, one replica, three sentinels) through a failover."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from opsloop.testsupport.redis_topologies import RedisSentinelSet

from tests.exporter.scrapes import Series, scrape, value

pytestmark = pytest.mark.slow


@pytest.fixture
def sentinel_set() -> Iterator[RedisSentinelSet]:
    with RedisSentinelSet(sentinel_password="s3cret") as topology:
        yield topology


def config(sentinel_set: RedisSentinelSet, tmp_path: Path) -> dict[str, object]:
    (tmp_path / "sentinel-pass").write_text("s3cret\n")
    return {
        "scrape": {"breaker_max_backoff": "1s"},
        "redis": [
            {
                "name": "s",
                "mode": "sentinel",
                "sentinels": sentinel_set.sentinel_addresses,
                "primary_name": sentinel_set.primary_name,
                "sentinel_password_file": str(tmp_path / "sentinel-pass"),
                "node_timeout": "1s",
                "discovery_interval": "1h",
            }
        ],
        "queues": [{"redis": "s", "pattern": "q:*"}],
    }


def fill(sentinel_set: RedisSentinelSet) -> dict[str, float]:
    with redis.Redis("127.0.0.1", sentinel_set.primary.port) as primary:
        for i in range(50):
            primary.rpush(f"q:{i}", *["x"] * (i + 1))
        primary.wait(1, 5000)  # the replica has every item before any failover
    return {f"q:{i}": float(i + 1) for i in range(50)}


def lengths(series: Series) -> dict[str, float]:
    return {dict(labels)["queue"]: v for (name, labels), v in series.items() if name == "opsloop_queue_length"}


async def test_scrapes_follow_a_failover_without_restart(sentinel_set, write_config, exporter_client, tmp_path):
    expected = fill(sentinel_set)
    client = await exporter_client(write_config(config(sentinel_set, tmp_path)))
    assert lengths(await scrape(client)) == expected

    scrapes: list[tuple[float, Series]] = []
    after = {**expected, "q:0": 2.0}  # one item pushed on the new primary below

    async def loop() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(scrapes) < 300:
            started = time.monotonic()
            series = await scrape(client, timeout=3)
            scrapes.append((time.monotonic() - started, series))
            if lengths(series) == after:
                return
            await asyncio.sleep(0.05)

    task = asyncio.create_task(loop())
    old = sentinel_set.current_primary()
    new = await asyncio.to_thread(sentinel_set.failover)
    old.kill()  # only the new primary is left: a client still on the old one would read nothing now
    with redis.Redis("127.0.0.1", new.port) as primary:
        primary.rpush("q:0", "written after the failover")
    await task

    for took, series in scrapes:
        assert took < 3  # answered within Prometheus' timeout, failover window included
        published = lengths(series)
        if value(series, "opsloop_source_up", source="redis/s") == 1:
            assert published in (expected, after)  # nothing lost, nothing doubled by the failover
        else:
            assert published == {}
    last = scrapes[-1][1]
    assert value(last, "opsloop_source_up", source="redis/s") == 1
    assert lengths(last) == after  # read from the new primary, with no restart


async def test_a_hung_primary_reads_down_in_time_until_the_sentinels_promote_the_replica(
    sentinel_set, write_config, exporter_client, tmp_path
):
    expected = fill(sentinel_set)
    client = await exporter_client(write_config(config(sentinel_set, tmp_path)))
    assert lengths(await scrape(client)) == expected
    sentinel_set.primary.pause()  # silent, not refused: the hardest failure for a client to notice
    try:
        scrapes: list[tuple[float, Series]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            started = time.monotonic()
            scrapes.append((time.monotonic() - started, await scrape(client, timeout=3)))
            scrapes[-1] = (time.monotonic() - started, scrapes[-1][1])
            if value(scrapes[-1][1], "opsloop_source_up", source="redis/s") == 1:
                break
            await asyncio.sleep(0.2)
        assert all(took < 3 for took, _ in scrapes)
        down = [s for _, s in scrapes if value(s, "opsloop_source_up", source="redis/s") == 0]
        assert down  # the window between the hang and the promotion
        assert all(lengths(s) == {} for s in down)
        assert sentinel_set.primary_port() == sentinel_set.replica.port  # the sentinels promoted the replica
        assert lengths(scrapes[-1][1]) == expected  # recovered by itself, from the promoted replica
    finally:
        sentinel_set.primary.resume()
