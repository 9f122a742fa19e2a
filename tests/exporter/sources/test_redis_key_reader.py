"""The queue reader's fast path and its script arguments, checked against what Redis holds and counts."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator

import pytest
import redis
from opsloop.exporter.config import KeyConfig, OldestAgeConfig, RedisConfig
from opsloop.exporter.sources.base import Column
from opsloop.exporter.sources.redis_queues import QUEUE_METRICS, KeyReader
from opsloop.exporter.sources.redis_source import KeyLookups
from opsloop.testsupport.servers import RedisServer
from redis.asyncio import Redis

from tests.exporter.scrapes import assert_age, scrape, timed_scrape, value


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[Redis]:
    redis = Redis.from_url(redis_server.url, decode_responses=True)  # as the exporter connects
    yield redis
    await redis.aclose()


async def read(reader: KeyReader, client: Redis) -> list[object]:
    """One read as a scrape does it: discovery, the script calls in a pipeline, the parse."""
    await reader.prepare(client)
    pipe = client.pipeline(transaction=False)
    replies = reader.plan(pipe)
    for index, reply in enumerate(await pipe.execute()):
        replies.take(index, reply)
    return list(replies.series())


def pattern_reader(url: str, oldest: OldestAgeConfig | None) -> KeyReader:
    entry = KeyConfig(redis="main", pattern="jobs:*", oldest_age=oldest)
    return KeyReader(entry, RedisConfig(name="main", url=url), QUEUE_METRICS, KeyLookups())


def columns(series: list[object]) -> dict[str, Column]:
    return {s.metric.name: s for s in series if isinstance(s, Column)}


async def test_stamped_lists_of_a_pattern_share_the_discovered_key_list_as_names(
    client: Redis, redis_server: RedisServer
) -> None:
    """The fast path: 100,000 keys cost no list of names per column, and still read what Redis holds."""
    stamp = time.time() - 30
    for n in range(3):
        await client.lpush(f"jobs:{n}", json.dumps({"t": stamp}), *(["x"] * n))
    reader = pattern_reader(redis_server.url, OldestAgeConfig(field="t"))
    before = time.time()
    cols = columns(await read(reader, client))
    after = time.time()
    assert reader.discovery is not None
    keys = reader.discovery.keys
    assert keys == sorted(await client.keys("jobs:*"))
    length, age = cols["opsloop_queue_length"], cols["opsloop_queue_oldest_age_seconds"]
    assert length.names is keys
    assert age.names is keys
    assert list(length.values) == [await client.llen(key) for key in keys]
    for seconds in age.values:
        assert_age(seconds, stamp, before, after)


async def test_a_pattern_without_an_age_shares_the_names_of_its_lengths_only(
    client: Redis, redis_server: RedisServer
) -> None:
    await client.lpush("jobs:a", "x", "y")
    await client.lpush("jobs:b", "x")
    reader = pattern_reader(redis_server.url, None)
    cols = columns(await read(reader, client))
    assert reader.discovery is not None
    assert set(cols) == {"opsloop_queue_length"}
    assert cols["opsloop_queue_length"].names is reader.discovery.keys
    assert list(cols["opsloop_queue_length"].values) == [2.0, 1.0]


async def test_a_batch_read_key_by_key_gives_each_column_names_of_its_own(
    client: Redis, redis_server: RedisServer
) -> None:
    await client.lpush("jobs:a", json.dumps({"t": time.time()}))
    await client.zadd("jobs:z", {"m": time.time()})
    reader = pattern_reader(redis_server.url, OldestAgeConfig(field="t"))
    cols = columns(await read(reader, client))
    assert reader.discovery is not None
    length = cols["opsloop_queue_length"]
    assert length.names == reader.discovery.keys == ["jobs:a", "jobs:z"]
    assert length.names is not reader.discovery.keys  # a list of its own: the discovery replaces its list
    assert list(length.values) == [await client.llen("jobs:a"), await client.zcard("jobs:z")]


def lindex_calls(r: redis.Redis) -> int:
    return r.info("commandstats").get("cmdstat_lindex", {}).get("calls", 0)


async def test_no_list_item_is_read_when_no_age_is_asked(redis_server, write_config, exporter_client) -> None:
    """Without ``oldest_age`` the script reads lengths only: Redis counts no LINDEX (and one with it)."""
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    r.lpush("plain", json.dumps({"t": time.time()}))
    r.lpush("stamped", json.dumps({"t": time.time()}))
    plain = write_config({"redis": [{"name": "main", "url": redis_server.url}],
                          "queues": [{"redis": "main", "key": "plain"}]})  # fmt: skip
    stamped = write_config({"redis": [{"name": "main", "url": redis_server.url}],
                            "queues": [{"redis": "main", "key": "stamped", "oldest_age": {"field": "t"}}]})  # fmt: skip
    before = lindex_calls(r)
    assert value(await scrape(await exporter_client(plain)), "opsloop_queue_length", redis="main", queue="plain") == 1
    assert lindex_calls(r) == before
    assert (
        value(await scrape(await exporter_client(stamped)), "opsloop_queue_length", redis="main", queue="stamped") == 1
    )
    assert lindex_calls(r) == before + 1


async def test_stamps_on_both_sides_of_the_millisecond_cutoff_in_one_batch(
    redis_server, write_config, exporter_client
) -> None:
    """One key in milliseconds turns the batch's stamps one by one: 1e11 itself stays seconds (age 0)."""
    r = redis.Redis.from_url(redis_server.url)
    r.lpush("jobs:at_cutoff", json.dumps({"t": 100000000000}))
    r.lpush("jobs:millis", json.dumps({"t": 150000000000}))
    r.lpush("jobs:seconds", json.dumps({"t": 1700000000.5}))
    cfg = write_config({"redis": [{"name": "main", "url": redis_server.url}],
                        "queues": [{"redis": "main", "pattern": "jobs:*", "oldest_age": {"field": "t"}}]})  # fmt: skip
    before, series, after = await timed_scrape(await exporter_client(cfg))

    def age(queue: str) -> float | None:
        return value(series, "opsloop_queue_oldest_age_seconds", redis="main", queue=queue)

    assert age("jobs:at_cutoff") == 0.0
    assert_age(age("jobs:millis"), 150000000.0, before, after)
    assert_age(age("jobs:seconds"), 1700000000.5, before, after)


async def test_replies_taken_in_any_order_read_as_redis_holds_them(client: Redis, redis_server: RedisServer) -> None:
    """Slices come back in any order: 2,500 keys in three script calls, the middle one read key by key."""
    stamp = time.time() - 60
    pipe = client.pipeline(transaction=False)
    for n in range(2_500):
        pipe.lpush(f"jobs:{n:04}", json.dumps({"t": stamp + n}), *(["x"] * (n % 3)))
    await pipe.execute()
    reader = pattern_reader(redis_server.url, OldestAgeConfig(field="t"))
    await reader.prepare(client)
    await client.delete("jobs:1500")  # emptied once discovered: no stamp, so its batch is read the long way
    pipe = client.pipeline(transaction=False)
    replies = reader.plan(pipe)
    answers = await pipe.execute()
    assert len(answers) == 3
    before = time.time()
    for index in (2, 0, 1):
        replies.take(index, answers[index])
    after = time.time()
    cols = columns(list(replies.series()))
    keys = sorted([*await client.keys("jobs:*"), "jobs:1500"])  # a discovered key reads 0 until forgotten
    length, age = cols["opsloop_queue_length"], cols["opsloop_queue_oldest_age_seconds"]
    assert length.names == keys
    assert length.names is not reader.discovery.keys  # not shared: one batch was read key by key
    assert list(length.values) == [await client.llen(key) for key in keys]
    assert age.names == keys
    for key, seconds in zip(age.names, age.values, strict=True):
        if key == "jobs:1500":
            assert seconds == 0.0  # an empty queue waits for nothing
        else:
            assert_age(seconds, stamp + int(key.split(":")[1]), before, after)


async def test_ages_are_written_to_the_microsecond(redis_server, write_config, exporter_client) -> None:
    r = redis.Redis.from_url(redis_server.url)
    stamp = time.time() - 12.5
    r.lpush("jobs:a", json.dumps({"t": stamp}))
    cfg = write_config({"redis": [{"name": "main", "url": redis_server.url}],
                        "queues": [{"redis": "main", "pattern": "jobs:*", "oldest_age": {"field": "t"}}]})  # fmt: skip
    client = await exporter_client(cfg)
    before = time.time()
    text = await (await client.get("/metrics")).text()
    after = time.time()
    (line,) = [line for line in text.splitlines() if line.startswith("opsloop_queue_oldest_age_seconds{")]
    written = re.fullmatch(r'opsloop_queue_oldest_age_seconds\{redis="main",queue="jobs:a"\} (\d+\.\d{6})', line)
    assert written is not None, line
    assert_age(float(written[1]), stamp, before, after)


async def test_stamps_on_both_sides_of_the_scripts_integer_range_read_as_written(
    redis_server, write_config, exporter_client
) -> None:
    """The script answers a stamp within 1e14 as an integer count of 0.1 ms, and a larger one, whose count
    would not fit 64 bits, as its text: each reads as the number the item holds (negative here, so that
    the age shows it)."""
    r = redis.Redis.from_url(redis_server.url)
    stamps = {"jobs:integer": -99999999999999, "jobs:text": -100000000000000, "jobs:far": -1e16}
    for key, stamp in stamps.items():
        r.lpush(key, json.dumps({"t": stamp}))
    cfg = write_config({"redis": [{"name": "main", "url": redis_server.url}],
                        "queues": [{"redis": "main", "pattern": "jobs:*", "oldest_age": {"field": "t"}}]})  # fmt: skip
    before, series, after = await timed_scrape(await exporter_client(cfg))
    for key, stamp in stamps.items():
        age = value(series, "opsloop_queue_oldest_age_seconds", redis="main", queue=key)
        assert age is not None
        # doubles this large are 1/64 (near 1e14) to 2 (near 1e16) apart: room for that rounding only
        spacing = abs(stamp) * 2**-52
        assert before - stamp - spacing <= age <= after - stamp + spacing, (key, age)


async def test_the_lookups_it_counts_are_those_redis_counts(client: Redis, redis_server: RedisServer) -> None:
    """Hits and misses apart, as Redis adds them to INFO: lists, a sorted set and a key gone since discovery."""
    for n in range(3):
        await client.lpush(f"jobs:{n}", json.dumps({"t": time.time()}))
    await client.zadd("jobs:z", {"a": 1})
    reader = pattern_reader(redis_server.url, OldestAgeConfig(field="t"))
    await reader.prepare(client)
    await client.delete("jobs:1")  # discovered, then deleted: a miss
    before = await client.info("stats")
    pipe = client.pipeline(transaction=False)
    replies = reader.plan(pipe)
    for index, reply in enumerate(await pipe.execute()):
        replies.take(index, reply)
    after = await client.info("stats")
    counted = (reader.lookups.hits, reader.lookups.misses)
    assert counted == (
        after["keyspace_hits"] - before["keyspace_hits"],
        after["keyspace_misses"] - before["keyspace_misses"],
    )
    assert counted[0] > counted[1] == 1
