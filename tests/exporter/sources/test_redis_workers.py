"""Worker counts from a registration set and from heartbeat keys that expire."""

from __future__ import annotations

import redis

from tests.exporter.scrapes import scrape, value


async def test_set_and_heartbeats_and_per_queue_sum(redis_server, write_config, exporter_client):
    r = redis.Redis.from_url(redis_server.url)
    r.sadd("workers:rag", "w1", "w2", "w3")
    r.set("worker:mail:1", "x", ex=60)
    r.set("worker:mail:2", "x", px=300)  # this one dies during the test
    cfg = write_config(
        {
            "redis": [{"name": "main", "url": redis_server.url, "discovery_interval": "1h"}],
            "workers": [
                {"redis": "main", "name": "rag", "set": "workers:rag", "queues": ["emails", "render"]},
                {"redis": "main", "name": "mail", "heartbeat_pattern": "worker:mail:*", "queues": ["emails"]},
                {"redis": "main", "name": "idle", "heartbeat_pattern": "worker:idle:*"},
            ],
        }
    )
    client = await exporter_client(cfg)
    series = await scrape(client)
    assert value(series, "opsloop_workers", redis="main", name="rag") == 3
    assert value(series, "opsloop_workers", redis="main", name="mail") == 2
    assert value(series, "opsloop_workers", redis="main", name="idle") == 0
    assert value(series, "opsloop_queue_workers", redis="main", queue="emails") == 5
    assert value(series, "opsloop_queue_workers", redis="main", queue="render") == 3
    r.srem("workers:rag", "w1")
    r.delete("worker:mail:2")  # expired heartbeat: gone at once, without waiting for rediscovery
    series = await scrape(client)
    assert value(series, "opsloop_workers", redis="main", name="rag") == 2
    assert value(series, "opsloop_workers", redis="main", name="mail") == 1
    assert value(series, "opsloop_queue_workers", redis="main", queue="emails") == 3
