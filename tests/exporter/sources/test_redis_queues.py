"""Queue metrics equal what a real Redis holds, for lists, sorted sets and streams."""

from __future__ import annotations

import json
import logging
import time

import pytest
import redis
from opsloop.exporter.sources.redis_queues import parse_timestamp
from opsloop.testsupport.servers import RedisServer

from tests.exporter.scrapes import assert_age, scrape, scrape_until, timed_scrape, value


@pytest.fixture
def r(redis_server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(redis_server.url, decode_responses=True)


def config(url: str, queues: list[dict[str, object]], **redis_extra: object) -> dict[str, object]:
    return {"redis": [{"name": "main", "url": url, **redis_extra}], "queues": queues}


async def test_list_length_and_oldest_age_from_json_field(redis_server, r, write_config, exporter_client):
    now = time.time()
    r.lpush("queue:emails", json.dumps({"enqueued_at": now - 120.25}))  # oldest, right end
    r.lpush("queue:emails", json.dumps({"enqueued_at": now - 5}), json.dumps({"enqueued_at": now}))
    cfg = write_config(
        config(redis_server.url, [{"name": "emails", "redis": "main", "key": "queue:emails",
                                   "oldest_age": {"field": "enqueued_at"}}])
    )  # fmt: skip
    before, series, after = await timed_scrape(await exporter_client(cfg))
    assert value(series, "opsloop_queue_length", redis="main", queue="emails") == 3
    age = value(series, "opsloop_queue_oldest_age_seconds", redis="main", queue="emails")
    assert_age(age, now - 120.25, before, after)
    assert value(series, "opsloop_source_up", source="redis/main") == 1


async def test_oldest_at_left_end_and_iso_and_millisecond_timestamps(redis_server, r, write_config, exporter_client):
    now = float(int(time.time()))  # whole seconds: the ISO form below carries no fraction
    r.rpush("left", json.dumps({"t": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 600))}))
    r.rpush("left", json.dumps({"t": now}))
    r.lpush("millis", json.dumps({"t": int((now - 60) * 1000)}))
    cfg = write_config(
        config(redis_server.url, [
            {"redis": "main", "key": "left", "oldest_age": {"field": "t", "end": "left"}},
            {"redis": "main", "key": "millis", "oldest_age": {"field": "t"}},
        ])
    )  # fmt: skip
    before, series, after = await timed_scrape(await exporter_client(cfg))
    assert_age(value(series, "opsloop_queue_oldest_age_seconds", redis="main", queue="left"), now - 600, before, after)
    assert_age(value(series, "opsloop_queue_oldest_age_seconds", redis="main", queue="millis"), now - 60, before, after)


async def test_configured_key_that_redis_deleted_reads_zero(redis_server, r, write_config, exporter_client):
    r.lpush("queue:gone", json.dumps({"enqueued_at": time.time()}))
    cfg = write_config(
        config(redis_server.url, [{"name": "gone", "redis": "main", "key": "queue:gone",
                                   "oldest_age": {"field": "enqueued_at"}}])
    )  # fmt: skip
    client = await exporter_client(cfg)
    assert value(await scrape(client), "opsloop_queue_length", redis="main", queue="gone") == 1
    r.rpop("queue:gone")  # Redis deletes the now-empty list
    assert r.exists("queue:gone") == 0
    series = await scrape(client)
    assert value(series, "opsloop_queue_length", redis="main", queue="gone") == 0
    assert value(series, "opsloop_queue_oldest_age_seconds", redis="main", queue="gone") == 0


async def test_sorted_set_length_and_age_from_lowest_score(redis_server, r, write_config, exporter_client):
    now = time.time()
    r.zadd("delayed", {"a": now - 300.5, "b": now - 10, "c": now})
    cfg = write_config(config(redis_server.url, [{"name": "delayed", "redis": "main", "key": "delayed"}]))
    before, series, after = await timed_scrape(await exporter_client(cfg))
    assert value(series, "opsloop_queue_length", redis="main", queue="delayed") == 3
    age = value(series, "opsloop_queue_oldest_age_seconds", redis="main", queue="delayed")
    assert_age(age, now - 300.5, before, after)


async def test_stream_length_age_and_group_pending_and_lag(redis_server, r, write_config, exporter_client):
    first_ms = int((time.time() - 42) * 1000)
    r.xadd("events", {"n": 0}, id=f"{first_ms}-0")
    for n in range(1, 5):
        r.xadd("events", {"n": n})
    r.xgroup_create("events", "billing", id="0")
    r.xreadgroup("billing", "c1", {"events": ">"}, count=2)  # 2 pending, 3 not delivered
    r.xgroup_create("events", "audit", id="0")
    r.xreadgroup("audit", "c1", {"events": ">"}, count=4)  # a second group: 4 pending, 1 not delivered
    cfg = write_config(config(redis_server.url, [{"name": "events", "redis": "main", "key": "events"}]))
    before, series, after = await timed_scrape(await exporter_client(cfg))
    assert value(series, "opsloop_queue_length", redis="main", queue="events") == 5
    age = value(series, "opsloop_queue_oldest_age_seconds", redis="main", queue="events")
    assert_age(age, first_ms / 1000, before, after)
    assert value(series, "opsloop_stream_group_pending", redis="main", queue="events", group="billing") == 2
    assert value(series, "opsloop_stream_group_lag", redis="main", queue="events", group="billing") == 3
    assert value(series, "opsloop_stream_group_pending", redis="main", queue="events", group="audit") == 4
    assert value(series, "opsloop_stream_group_lag", redis="main", queue="events", group="audit") == 1


async def test_pattern_discovers_every_type_and_labels_by_key(redis_server, r, write_config, exporter_client):
    r.lpush("jobs:a", "x", "y")
    r.zadd("jobs:b", {"m": time.time()})
    r.xadd("jobs:c", {"k": "v"})
    r.set("other", "1")
    cfg = write_config(config(redis_server.url, [{"redis": "main", "pattern": "jobs:*"}]))
    series = await scrape(await exporter_client(cfg))
    lengths = {dict(labels)["queue"]: v for (name, labels), v in series.items() if name == "opsloop_queue_length"}
    assert lengths == {"jobs:a": 2, "jobs:b": 1, "jobs:c": 1}
    assert value(series, "opsloop_keys_truncated", redis="main", pattern="jobs:*") == 0


async def test_discovery_is_cached_between_scrapes_and_capped(redis_server, r, write_config, exporter_client):
    for n in range(5):
        r.lpush(f"jobs:{n}", "x")
    cfg = write_config(
        config(redis_server.url, [{"redis": "main", "pattern": "jobs:*"}],
               max_keys_per_pattern=3, discovery_interval="1h")
    )  # fmt: skip
    client = await exporter_client(cfg)
    series = await scrape(client)
    assert sum(1 for (name, _) in series if name == "opsloop_queue_length") == 3
    assert value(series, "opsloop_keys_truncated", redis="main", pattern="jobs:*") == 1
    scans_before = r.info("commandstats").get("cmdstat_scan", {}).get("calls", 0)
    await scrape(client)
    await scrape(client)
    assert r.info("commandstats").get("cmdstat_scan", {}).get("calls", 0) == scans_before


async def test_key_recreated_with_another_type_is_detected_again(redis_server, r, write_config, exporter_client):
    r.lpush("q", "a")
    cfg = write_config(config(redis_server.url, [{"name": "q", "redis": "main", "key": "q"}]))
    client = await exporter_client(cfg)
    assert value(await scrape(client), "opsloop_queue_length", redis="main", queue="q") == 1
    r.delete("q")
    r.zadd("q", {"a": 1, "b": 2, "c": 3})
    await scrape(client)  # WRONGTYPE for the cached list type: re-detected on the next scrape
    assert value(await scrape(client), "opsloop_queue_length", redis="main", queue="q") == 3


async def test_steady_scrape_reads_all_keys_in_one_script_call(redis_server, r, write_config, exporter_client):
    for n in range(50):
        r.lpush(f"jobs:{n}", "x")
    cfg = write_config(config(redis_server.url, [{"redis": "main", "pattern": "jobs:*"}], discovery_interval="1h"))
    client = await exporter_client(cfg)
    await scrape(client)  # discovery happens here
    before = r.info("commandstats")
    connections = r.info("stats")["total_connections_received"]
    series = await scrape(client)
    after = r.info("commandstats")
    assert sum(1 for (name, _) in series if name == "opsloop_queue_length") == 50
    assert after["cmdstat_eval"]["calls"] - before["cmdstat_eval"]["calls"] == 1  # 50 keys, one call
    assert after["cmdstat_scan"]["calls"] == before["cmdstat_scan"]["calls"]  # discovery is cached
    assert r.info("stats")["total_connections_received"] == connections  # the connection is reused


async def test_large_pattern_is_read_in_batches(redis_server, r, write_config, exporter_client):
    pipe = r.pipeline(transaction=False)
    for n in range(2001):
        pipe.lpush(f"jobs:{n}", *(["x"] * (n % 7 + 1)))
    pipe.execute()
    cfg = write_config(config(redis_server.url, [{"redis": "main", "pattern": "jobs:*"}]))
    client = await exporter_client(cfg)
    before = r.info("commandstats").get("cmdstat_eval", {}).get("calls", 0)
    series = await scrape(client)
    assert r.info("commandstats")["cmdstat_eval"]["calls"] - before == 3  # 1,000 + 1,000 + 1 keys
    lengths = {dict(labels)["queue"]: v for (name, labels), v in series.items() if name == "opsloop_queue_length"}
    assert lengths == {f"jobs:{n}": n % 7 + 1 for n in range(2001)}


async def test_a_late_batch_read_the_long_way_keeps_every_earlier_name(redis_server, r, write_config, exporter_client):
    # 2,000 stamped lists take the fast path (their columns share the key list); the third batch holds
    # an ISO stamp and a sorted set, read key by key: every key keeps its own length and age.
    stamp = time.time() - 30
    pipe = r.pipeline(transaction=False)
    for n in range(2000):
        pipe.lpush(f"jobs:{n:04d}", json.dumps({"t": stamp}), *(["x"] * (n % 5)))
    pipe.execute()
    r.lpush("jobs:iso", json.dumps({"t": "2023-11-14T22:13:20Z"}))
    r.zadd("jobs:zset", {"m": stamp})
    cfg = write_config(config(redis_server.url, [{"redis": "main", "pattern": "jobs:*", "oldest_age": {"field": "t"}}]))
    before, series, after = await timed_scrape(await exporter_client(cfg))
    lengths = {dict(labels)["queue"]: v for (name, labels), v in series.items() if name == "opsloop_queue_length"}
    assert lengths == {key: (r.zcard(key) if key == "jobs:zset" else r.llen(key)) for key in r.scan_iter("jobs:*")}
    ages = {
        dict(labels)["queue"]: v for (name, labels), v in series.items() if name == "opsloop_queue_oldest_age_seconds"
    }
    assert set(ages) == set(lengths)
    assert_age(ages["jobs:iso"], 1700000000.0, before, after)
    for n in (0, 999, 1000, 1999):
        assert_age(ages[f"jobs:{n:04d}"], stamp, before, after)


async def test_keys_of_other_types_are_skipped(redis_server, r, write_config, exporter_client, caplog):
    caplog.set_level(logging.DEBUG, logger="opsloop.exporter.sources.redis_queues")
    r.set("jobs:string", "v")
    r.hset("jobs:hash", "f", "v")
    r.lpush("jobs:list", "a")
    cfg = write_config(config(redis_server.url, [{"redis": "main", "pattern": "jobs:*"}]))
    series = await scrape(await exporter_client(cfg))
    lengths = {dict(labels)["queue"]: v for (name, labels), v in series.items() if name == "opsloop_queue_length"}
    assert lengths == {"jobs:list": 1}
    skipped = {(rec.key, rec.type) for rec in caplog.records if rec.getMessage() == "key of unsupported type skipped"}
    assert skipped == {("jobs:string", "string"), ("jobs:hash", "hash")}


async def test_unusable_stamp_gives_length_without_age(redis_server, r, write_config, exporter_client, caplog):
    caplog.set_level(logging.DEBUG, logger="opsloop.exporter.sources.redis_queues")
    r.lpush("naive", json.dumps({"t": "2023-11-14T22:13:20"}), json.dumps({"t": time.time()}))  # no zone: refused
    cfg = write_config(config(redis_server.url, [{"redis": "main", "key": "naive", "oldest_age": {"field": "t"}}]))
    series = await scrape(await exporter_client(cfg))
    assert value(series, "opsloop_queue_length", redis="main", queue="naive") == 2
    assert value(series, "opsloop_queue_oldest_age_seconds", redis="main", queue="naive") is None
    keys = [rec.key for rec in caplog.records if rec.getMessage() == "oldest item has no usable timestamp"]
    assert keys == ["naive"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(1700000000, 1700000000.0), (1700000000123, 1700000000.123), (100000000000, 100000000000.0),
     (150000000000, 150000000.0), ("1700000000.5", 1700000000.5),
     ("2023-11-14T22:13:20Z", 1700000000.0), ("2023-11-14T22:13:20", None), ("soon", None), (True, None)],
)  # fmt: skip
def test_parse_timestamp(raw: object, expected: float | None) -> None:
    assert parse_timestamp(raw) == expected


def scans(r: redis.Redis) -> int:
    return r.info("commandstats").get("cmdstat_scan", {}).get("calls", 0)


async def test_discovered_key_that_redis_deleted_reads_zero_until_forgotten(
    redis_server, r, write_config, exporter_client
):
    r.lpush("dlq:emails", "a", "b")
    cfg = write_config(config(redis_server.url, [{"redis": "main", "pattern": "dlq:*"}], discovery_interval="0s"))
    client = await exporter_client(cfg)
    assert value(await scrape(client), "opsloop_queue_length", redis="main", queue="dlq:emails") == 2
    r.delete("dlq:emails")  # drained: Redis deletes the empty list
    # Barrier: a rescan starts only once the previous one is done, and each is one SCAN call here (a
    # handful of keys, COUNT 1000), so two SCANs after the delete mean a whole rescan has finished.
    scans_before = scans(r)
    series = await scrape_until(client, lambda _: scans(r) >= scans_before + 2)
    assert value(series, "opsloop_queue_length", redis="main", queue="dlq:emails") == 0

    forgetful = write_config(
        config(redis_server.url, [{"redis": "main", "pattern": "dlq:*"}], discovery_interval="0s", forget_after="0s")
    )
    r.lpush("dlq:other", "a")
    client = await exporter_client(forgetful)
    assert value(await scrape(client), "opsloop_queue_length", redis="main", queue="dlq:other") == 1
    r.delete("dlq:other")
    series = await scrape_until(
        client, lambda s: value(s, "opsloop_queue_length", redis="main", queue="dlq:other") is None
    )
    assert value(series, "opsloop_queue_length", redis="main", queue="dlq:other") is None


async def test_items_stamped_in_the_future_read_age_zero(redis_server, r, write_config, exporter_client):
    """A producer's clock ahead of the exporter's must not give a negative age."""
    future = time.time() + 3600
    r.lpush("list", json.dumps({"t": future}))
    r.zadd("zset", {"m": future})
    r.xadd("stream", {"k": "v"}, id=f"{int(future * 1000)}-0")
    cfg = write_config(
        config(redis_server.url, [
            {"redis": "main", "key": "list", "oldest_age": {"field": "t"}},
            {"redis": "main", "key": "zset"},
            {"redis": "main", "key": "stream"},
        ])
    )  # fmt: skip
    series = await scrape(await exporter_client(cfg))
    ages = {
        q: value(series, "opsloop_queue_oldest_age_seconds", redis="main", queue=q) for q in ("list", "zset", "stream")
    }
    assert ages == {"list": 0.0, "zset": 0.0, "stream": 0.0}


async def test_list_stamp_in_milliseconds_from_just_above_1e11(redis_server, r, write_config, exporter_client):
    """1e11 itself is seconds (year 5138: a future stamp, age 0); 1.5e11 is milliseconds (1974)."""
    r.lpush("at_cutoff", json.dumps({"t": 100000000000}))
    r.lpush("millis", json.dumps({"t": 150000000000}))
    cfg = write_config(
        config(redis_server.url, [
            {"redis": "main", "key": "at_cutoff", "oldest_age": {"field": "t"}},
            {"redis": "main", "key": "millis", "oldest_age": {"field": "t"}},
        ])
    )  # fmt: skip
    before, series, after = await timed_scrape(await exporter_client(cfg))
    assert value(series, "opsloop_queue_oldest_age_seconds", redis="main", queue="at_cutoff") == 0.0
    age = value(series, "opsloop_queue_oldest_age_seconds", redis="main", queue="millis")
    assert_age(age, 150000000.0, before, after)


async def test_empty_stream_reads_length_and_age_zero(redis_server, r, write_config, exporter_client):
    """A stream outlives its last entry (unlike a list), so an empty one is still a queue with nothing waiting."""
    r.xgroup_create("empty", "workers", id="$", mkstream=True)
    cfg = write_config(config(redis_server.url, [{"redis": "main", "key": "empty"}]))
    series = await scrape(await exporter_client(cfg))
    assert r.xlen("empty") == 0
    assert value(series, "opsloop_queue_length", redis="main", queue="empty") == 0
    assert value(series, "opsloop_queue_oldest_age_seconds", redis="main", queue="empty") == 0.0
    assert value(series, "opsloop_stream_group_pending", redis="main", queue="empty", group="workers") == 0


async def test_list_without_a_usable_stamp_or_age_config_has_no_age(redis_server, r, write_config, exporter_client):
    """No age is better than a made-up one: an item without the field, or no field configured at all."""
    r.lpush("unstamped", json.dumps({"other": 1}))
    r.lpush("plain", json.dumps({"t": time.time() - 60}))
    cfg = write_config(
        config(redis_server.url, [
            {"redis": "main", "key": "unstamped", "oldest_age": {"field": "t"}},
            {"redis": "main", "key": "plain"},
            {"redis": "main", "key": "absent"},
        ])
    )  # fmt: skip
    series = await scrape(await exporter_client(cfg))
    queues = ("unstamped", "plain", "absent")
    lengths = {q: value(series, "opsloop_queue_length", redis="main", queue=q) for q in queues}
    assert lengths == {"unstamped": 1, "plain": 1, "absent": 0}
    assert not [labels for (name, labels) in series if name == "opsloop_queue_oldest_age_seconds"]


async def test_a_pattern_that_matches_nothing_publishes_no_queue_family(redis_server, r, write_config, exporter_client):
    r.set("other", "x")
    assert r.keys("nothing:*") == []  # Redis' own answer: no key matches
    cfg = write_config(
        config(redis_server.url, [{"redis": "main", "pattern": "nothing:*", "oldest_age": {"field": "at"}}])
    )
    resp = await (await exporter_client(cfg)).get("/metrics")
    text = await resp.text()
    assert "opsloop_queue_length" not in text
    assert "opsloop_queue_oldest_age_seconds" not in text
    assert 'opsloop_keys_truncated{redis="main",pattern="nothing:*"} 0.0' in text
