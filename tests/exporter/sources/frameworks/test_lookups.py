"""The framework scripts count their own key lookups exactly as Redis counts keyspace hits and misses."""

from __future__ import annotations

import json
import time

import redis

from tests.exporter.scrapes import scrape, value


def fill(r: redis.Redis) -> None:
    """Every kind of reply: keys present and missing, fields missing from present hashes, empty ranges."""
    now = time.time()
    r.sadd("rq:queues", "rq:queue:default", "rq:queue:empty", "rq:queue:ghost")
    r.rpush("rq:queue:default", "j1", "j2")
    r.hset("rq:job:j1", mapping={"status": "queued"})  # present hash, no enqueued_at
    r.rpush("rq:queue:ghost", "gone")  # no job hash at all
    r.zadd("rq:wip:default", {"j0:e1": now + 600})  # ZCOUNT of nothing overdue on a present key
    r.zadd("rq:failed:default", {"f1": now + 3600})
    r.hset("rq:job:f1", mapping={"ended_at": "2026-01-01T00:00:00.000000Z"})
    r.sadd("rq:workers:default", "rq:worker:alive", "rq:worker:dead")
    r.hset("rq:worker:alive", "state", "idle")
    r.rpush("dramatiq:default", "m1")
    r.hset("dramatiq:default.msgs", "m1", json.dumps({"message_timestamp": int(now * 1000)}))
    r.zadd("dramatiq:default.XQ", {"x1": now * 1000})
    r.lpush("celery", "{}")
    r.hset("unacked", mapping={
        "t1": json.dumps([{"headers": {"eta": None}}, "", "celery"]),
        "t2": json.dumps([{"headers": {"eta": None}}, "", "celery"]),  # not in unacked_index
    })  # fmt: skip
    r.zadd("unacked_index", {"t1": now})
    r.zadd("arq:later", {"a1": (now + 600) * 1000})  # ZCOUNT of nothing due on a present key


async def test_own_lookups_match_redis_keyspace_stats(redis_server, write_config, exporter_client):
    r = redis.Redis.from_url(redis_server.url)
    fill(r)
    cfg = write_config({
        "redis": [{"name": "main", "url": redis_server.url}],
        "frameworks": [
            {"redis": "main", "kind": "rq"},
            {"redis": "main", "kind": "dramatiq", "queues": ["default", "none"]},
            {"redis": "main", "kind": "celery", "queues": ["celery", "other"]},
            {"redis": "main", "kind": "arq", "queues": ["arq:later", "arq:none"]},
        ],
    })  # fmt: skip
    client = await exporter_client(cfg)
    first = await scrape(client)
    before = r.info("stats")
    second = await scrape(client)
    after = r.info("stats")
    hits = value(second, "opsloop_exporter_keyspace_hits_total", redis="main") - value(
        first, "opsloop_exporter_keyspace_hits_total", redis="main"
    )
    misses = value(second, "opsloop_exporter_keyspace_misses_total", redis="main") - value(
        first, "opsloop_exporter_keyspace_misses_total", redis="main"
    )
    assert (hits, misses) == (
        after["keyspace_hits"] - before["keyspace_hits"],
        after["keyspace_misses"] - before["keyspace_misses"],
    )
    assert hits > 20
    assert misses > 10
