"""The exporter counts its own key lookups exactly as Redis does, so hit ratios can leave them out."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import redis
import redis.asyncio
from opsloop.exporter.sources.redis_source import SLICE_ARGS, execute_in_slices
from opsloop.testsupport.servers import wait_until

from tests.exporter.scrapes import scrape, value


def redis_clock_ms(r: redis.Redis) -> int:
    seconds, micros = r.time()
    return seconds * 1000 + micros // 1000


async def test_own_lookups_match_the_keyspace_hits_and_misses_redis_counted(
    redis_server, write_config, exporter_client
):
    r = redis.Redis.from_url(redis_server.url)
    r.lpush("jobs:list", json.dumps({"enqueued_at": time.time()}), "x")
    r.zadd("jobs:zset", {"a": time.time()})
    r.xadd("jobs:stream", {"k": "v"})
    r.xgroup_create("jobs:stream", "g", id="0")
    r.set("jobs:string", "not a queue")
    r.lpush("dlq:emails", "x")
    r.sadd("workers:rag", "w1")
    r.set("worker:mail:1", "x", ex=60)
    r.set("worker:mail:2", "x")  # given a 1 ms expiry once discovered: gone at the measured scrape
    r.hset("cache:stats:users", mapping={"hits": 3})
    r.hset("cache:stats:gone", mapping={"hits": 1})
    cfg = write_config(
        {
            "redis": [{"name": "main", "url": redis_server.url, "discovery_interval": "1h"}],
            "queues": [
                {"redis": "main", "pattern": "jobs:*", "oldest_age": {"field": "enqueued_at"}},
                {"name": "empty", "redis": "main", "key": "queue:empty"},
            ],
            "dlqs": [{"redis": "main", "pattern": "dlq:*"}],
            "workers": [
                {"redis": "main", "name": "rag", "set": "workers:rag"},
                {"redis": "main", "name": "idle", "set": "workers:idle"},
                {"redis": "main", "name": "mail", "heartbeat_pattern": "worker:mail:*"},
            ],
            "cache": [{"redis": "main", "app_stats_pattern": "cache:stats:*"}],
        }
    )
    client = await exporter_client(cfg)
    first = await scrape(client)  # discovery happens here
    r.pexpire("worker:mail:2", 1)
    expires_ms = r.pexpiretime("worker:mail:2")
    # Wait by Redis' own clock (TIME touches no key, so nothing expires it early and no lookup is counted).
    await asyncio.to_thread(wait_until, lambda: redis_clock_ms(r) > expires_ms, 5, "worker:mail:2 to expire")
    r.delete("cache:stats:gone")
    before = r.info("stats")
    second = await scrape(client)
    after = r.info("stats")
    own_hits = value(second, "opsloop_exporter_keyspace_hits_total", redis="main") - value(
        first, "opsloop_exporter_keyspace_hits_total", redis="main"
    )
    own_misses = value(second, "opsloop_exporter_keyspace_misses_total", redis="main") - value(
        first, "opsloop_exporter_keyspace_misses_total", redis="main"
    )
    assert own_hits == after["keyspace_hits"] - before["keyspace_hits"]
    assert own_misses == after["keyspace_misses"] - before["keyspace_misses"]
    assert own_hits > 10
    assert own_misses >= 4  # queue:empty, workers:idle, the expired heartbeat, the deleted stats hash


async def test_a_large_pipeline_goes_out_in_slices_and_answers_in_order(redis_server):
    client = redis.asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        pipe = client.pipeline(transaction=False)
        for n in range(12_000):
            pipe.echo(str(n))  # two arguments: 5,000 commands a slice
        pipe.eval("return #KEYS", SLICE_ARGS, *(f"k{n}" for n in range(SLICE_ARGS)))  # larger than a slice
        pipe.echo("last")
        replies: dict[int, object] = {}
        await execute_in_slices(client, pipe, lambda first, got: replies.update(enumerate(got, first)), 2)
    finally:
        await client.aclose()
    assert [replies[n] for n in range(len(replies))] == [str(n) for n in range(12_000)] + [SLICE_ARGS, "last"]
    stats = redis.Redis.from_url(redis_server.url).info("commandstats")  # every slice went out once
    assert (stats["cmdstat_echo"]["calls"], stats["cmdstat_eval"]["calls"]) == (12_001, 1)


async def test_slices_in_flight_go_on_connections_of_their_own_and_a_failure_stops_the_rest(redis_server):
    r = redis.Redis.from_url(redis_server.url)
    client = redis.asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        pipe = client.pipeline(transaction=False)
        for n in range(SLICE_ARGS * 4):
            pipe.echo(str(n))  # two arguments: eight slices
        stack = list(pipe.command_stack)
        connections = r.info("stats")["total_connections_received"]
        replies: dict[int, object] = {}
        await execute_in_slices(client, pipe, lambda first, got: replies.update(enumerate(got, first)), 2)
        assert r.info("stats")["total_connections_received"] - connections == 2
        assert [replies[n] for n in range(len(replies))] == [str(n) for n in range(SLICE_ARGS * 4)]

        def refuse(first: int, got: list[object]) -> None:
            raise ValueError(f"slice at {first}")

        r.config_resetstat()
        pipe.command_stack = stack
        with pytest.raises(ValueError, match="slice at"):
            await execute_in_slices(client, pipe, refuse, 2)
    finally:
        await client.aclose()
    # the first failure ended the read: no sender went on past the slice it had in flight
    assert r.info("commandstats")["cmdstat_echo"]["calls"] <= 2 * SLICE_ARGS // 2  # of eight slices
