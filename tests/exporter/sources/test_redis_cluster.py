"""The exporter on a real three-primary Redis Cluster: every slot, a dead primary, a resharding."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest
import redis
from opsloop.exporter.sources.redis_cluster import SLOTS, ClusterNodes
from opsloop.testsupport.redis_topologies import RedisClusterNodes

from tests.exporter.scrapes import Series, scrape, value

pytestmark = pytest.mark.slow

KEYS = 600


@pytest.fixture
def cluster() -> Iterator[RedisClusterNodes]:
    with RedisClusterNodes(primaries=3) as nodes:
        yield nodes


def fill(cluster: RedisClusterNodes, keys: int = KEYS) -> dict[str, int]:
    """List keys spread over every slot, key i holding (i % 7) + 1 items; returns Redis' own LLEN of each."""
    with cluster.client() as client:
        pipe = client.pipeline()
        for i in range(keys):
            pipe.rpush(f"q:{i}", *(json.dumps({"at": time.time() - 60}) for _ in range(i % 7 + 1)))
        pipe.execute()
        pipe = client.pipeline()
        for i in range(keys):
            pipe.llen(f"q:{i}")
        return dict(zip((f"q:{i}" for i in range(keys)), pipe.execute(), strict=True))


def lengths(series: Series) -> dict[str, float]:
    return {dict(labels)["queue"]: v for (name, labels), v in series.items() if name == "opsloop_queue_length"}


def config(cluster: RedisClusterNodes, **redis: object) -> dict[str, object]:
    return {
        "redis": [{"name": "c", "url": cluster.url, "discovery_interval": "1h", **redis}],
        "queues": [{"redis": "c", "pattern": "q:*", "oldest_age": {"field": "at"}}],
    }


async def test_keys_on_every_primary_are_read_with_their_values(cluster, write_config, exporter_client):
    expected = fill(cluster)
    owners = {node.port for node in cluster.owners(list(expected)).values()}
    assert len(owners) == 3  # the keys really are spread over the three primaries
    with cluster.client() as c:
        c.set("worker:a", "1", ex=60)
        c.set("worker:b", "1", ex=60)
        c.set("worker:c", "1", ex=60)
        c.hset("stats:users", mapping={"hits": 5})
    cfg = write_config(
        {
            **config(cluster, seeds=cluster.seed_urls[1:]),
            "workers": [{"redis": "c", "name": "w", "heartbeat_pattern": "worker:*"}],
            "cache": [{"redis": "c", "app_stats_pattern": "stats:*"}],
        }
    )
    series = await scrape(await exporter_client(cfg))
    assert lengths(series) == expected
    ages = [v for (name, _), v in series.items() if name == "opsloop_queue_oldest_age_seconds"]
    assert len(ages) == KEYS
    assert all(59 <= age < 120 for age in ages)
    assert value(series, "opsloop_workers", redis="c", name="w") == 3  # EXISTS split over the nodes, summed
    assert value(series, "opsloop_app_cache_hits_total", redis="c", cache="users") == 5
    for node in cluster.nodes:
        assert value(series, "opsloop_redis_node_up", redis="c", node=f"127.0.0.1:{node.port}") == 1
    assert value(series, "opsloop_source_up", source="redis/c") == 1
    maxclients = sum(node_client_count(node.port) for node in cluster.nodes)
    assert value(series, "opsloop_cache_connected_clients", redis="c") == pytest.approx(maxclients, abs=3)


def node_client_count(port: int) -> int:
    with redis.Redis("127.0.0.1", port) as client:
        return int(client.info("clients")["connected_clients"])


async def test_a_killed_primary_costs_only_its_own_keys_and_recovers(cluster, write_config, exporter_client):
    expected = fill(cluster)
    client = await exporter_client(write_config(config(cluster, node_timeout="1s")))
    assert lengths(await scrape(client)) == expected
    owners = cluster.owners(list(expected))
    victim = owners["q:0"]
    victim_keys = {k for k in expected if owners[k] is victim}
    scrapes: list[tuple[float, Series]] = []

    async def loop() -> None:
        for _ in range(6):
            started = time.monotonic()
            scrapes.append((time.monotonic() - started, await scrape(client, timeout=4)))
            scrapes[-1] = (time.monotonic() - started, scrapes[-1][1])

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.05)
    victim.kill()  # mid-loop, usually mid-scrape
    await task
    node = f"127.0.0.1:{victim.port}"
    for took, series in scrapes:
        assert took < 4  # every scrape answered before Prometheus' timeout
        published = lengths(series)
        assert all(published[k] == expected[k] for k in published)  # nothing wrong, only missing
    last = scrapes[-1][1]
    assert set(lengths(last)) == set(expected) - victim_keys
    assert value(last, "opsloop_redis_node_up", redis="c", node=node) == 0
    assert value(last, "opsloop_redis_node_errors_total", redis="c", node=node) >= 1
    assert value(last, "opsloop_source_up", source="redis/c") == 0
    assert value(last, "opsloop_source_breaker_open", source="redis/c") == 0  # partial: keep asking

    victim.start()  # its nodes.conf brings it back into the cluster with its slots (data is gone: no save)
    cluster.wait_healthy()
    with cluster.client() as c:
        pipe = c.pipeline()
        for key in sorted(victim_keys):
            pipe.rpush(key, *["{}"] * expected[key])
        pipe.execute()
    recovered = await scrape(client)
    assert lengths(recovered) == expected
    assert value(recovered, "opsloop_redis_node_up", redis="c", node=node) == 1
    assert value(recovered, "opsloop_source_up", source="redis/c") == 1


async def test_resharding_during_scrapes_never_publishes_a_wrong_value(cluster, write_config, exporter_client):
    expected = fill(cluster, keys=1000)
    with cluster.client() as c:
        pipe = c.pipeline()
        for i in range(200):  # one hash tag: 200 keys in one slot, migrated one key at a time below
            pipe.rpush(f"q:{{hot}}:{i}", *["{}"] * (i % 5 + 1))
            expected[f"q:{{hot}}:{i}"] = i % 5 + 1
        pipe.execute()
        slot = c.keyslot("q:{hot}:0")
    client = await exporter_client(write_config(config(cluster)))
    assert lengths(await scrape(client)) == expected
    source = cluster.slot_owner(slot)
    target = next(n for n in cluster.primaries() if n is not source)
    seen: list[Series] = []
    done = asyncio.Event()

    async def loop() -> None:
        while not done.is_set() and len(seen) < 500:
            seen.append(await scrape(client, timeout=5))

    task = asyncio.create_task(loop())
    moved = await asyncio.to_thread(cluster.move_slot, slot, target, 1, 0.01)
    done.set()
    await task
    assert moved == 200
    assert len(seen) >= 3
    for series in seen:
        assert lengths(series) == expected  # every key, its true length, mid-migration included
    assert cluster.slot_owner(slot) is target
    assert lengths(await scrape(client)) == expected
    with redis.Redis("127.0.0.1", target.port) as node:  # Redis itself says the exporter followed ASK
        assert int(node.info("commandstats").get("cmdstat_asking", {}).get("calls", 0)) > 0


async def test_a_hung_primary_costs_its_node_timeout_not_the_scrape(cluster, write_config, exporter_client):
    expected = fill(cluster, keys=300)
    client = await exporter_client(write_config(config(cluster, node_timeout="1s")))
    assert lengths(await scrape(client)) == expected
    owners = cluster.owners(list(expected))
    hung = owners["q:0"]
    hung.pause()  # SIGSTOP: the socket stays open and nothing answers
    try:
        for _ in range(3):
            started = time.monotonic()
            series = await scrape(client, timeout=4)
            assert time.monotonic() - started < 4
            assert lengths(series) == {k: v for k, v in expected.items() if owners[k] is not hung}
            assert value(series, "opsloop_redis_node_up", redis="c", node=f"127.0.0.1:{hung.port}") == 0
    finally:
        hung.resume()
    assert lengths(await scrape(client)) == expected


def test_key_owners_follow_the_slots_redis_computes(cluster):
    by_slot = ClusterNodes([], lambda host, port: None, 1.0)  # type: ignore[arg-type, return-value]
    by_slot.slots = [str(slot) for slot in range(SLOTS)]  # each slot "owned" by its own number
    plain = [f"q:{i}" for i in range(300)] + ["ключ:ü", ""]
    tagged = [*plain, "{user1}:a", "{user1}:b", "x{}y", "{a", "a{b}{c}"]
    with cluster.client() as client:
        for keys in (plain, tagged):  # without hash tags, and with (the per-key path)
            expected = [str(client.execute_command("CLUSTER KEYSLOT", key)) for key in keys]
            assert by_slot.owners(keys) == expected
