"""Cache metrics equal Redis' own INFO counters, and app stats hashes become counters."""

from __future__ import annotations

import redis
from opsloop.testsupport.servers import RedisServer

from tests.exporter.scrapes import names, scrape, value


async def test_info_counters_memory_and_app_stats(write_config, exporter_client):
    with RedisServer(maxmemory="64mb") as server:
        r = redis.Redis.from_url(server.url)
        r.set("cache:item:1", "v")
        for _ in range(3):
            r.get("cache:item:1")
        for _ in range(2):
            r.get("cache:item:missing")
        r.hset("cache:stats:users", mapping={"hits": 40, "misses": 10, "l1_hits": 7, "label": "x"})
        r.hset("cache:stats:sessions", mapping={"hits": 1})
        cfg = write_config(
            {"redis": [{"name": "main", "url": server.url}],
             "cache": [{"redis": "main", "app_stats_pattern": "cache:stats:*"}]}
        )  # fmt: skip
        info_before = r.info()
        series = await scrape(await exporter_client(cfg))
    # The exporter's own HGETALLs add hits; compare with INFO read just before the scrape.
    assert value(series, "opsloop_cache_hits_total", redis="main") >= info_before["keyspace_hits"] >= 3
    assert value(series, "opsloop_cache_misses_total", redis="main") == info_before["keyspace_misses"] == 2
    assert value(series, "opsloop_cache_memory_max_bytes", redis="main") == 64 * 1024 * 1024
    assert value(series, "opsloop_cache_memory_used_bytes", redis="main") > 100_000
    assert value(series, "opsloop_cache_connected_clients", redis="main") >= 2
    assert value(series, "opsloop_cache_evicted_keys_total", redis="main") == 0
    assert 0 < value(series, "opsloop_cache_ping_seconds", redis="main") < 1
    assert value(series, "opsloop_app_cache_hits_total", redis="main", cache="users") == 40
    assert value(series, "opsloop_app_cache_misses_total", redis="main", cache="users") == 10
    assert value(series, "opsloop_app_cache_l1_hits_total", redis="main", cache="users") == 7
    assert value(series, "opsloop_app_cache_hits_total", redis="main", cache="sessions") == 1
    assert "opsloop_app_cache_label_total" not in names(series)


async def test_unlimited_memory_reads_zero_max(redis_server, write_config, exporter_client):
    cfg = write_config({"redis": [{"name": "main", "url": redis_server.url}], "cache": [{"redis": "main"}]})
    series = await scrape(await exporter_client(cfg))
    assert value(series, "opsloop_cache_memory_max_bytes", redis="main") == 0
