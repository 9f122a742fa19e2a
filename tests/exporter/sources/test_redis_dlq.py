"""DLQ metrics: same reader as queues, under the opsloop_dlq_* names and the ``dlq`` label."""

from __future__ import annotations

import json
import time

import redis

from tests.exporter.scrapes import assert_age, names, parse_metrics, scrape, timed_scrape, value


async def test_dlq_pattern_length_and_oldest_failure(redis_server, write_config, exporter_client):
    r = redis.Redis.from_url(redis_server.url)
    now = time.time()
    r.lpush("dlq:emails", json.dumps({"failed_at": now - 900}), json.dumps({"failed_at": now - 1}))
    r.lpush("dlq:render", json.dumps({"failed_at": now - 30}))
    cfg = write_config(
        {"redis": [{"name": "main", "url": redis_server.url}],
         "dlqs": [{"redis": "main", "pattern": "dlq:*", "oldest_age": {"field": "failed_at"}}]}
    )  # fmt: skip
    before, series, after = await timed_scrape(await exporter_client(cfg))
    assert value(series, "opsloop_dlq_length", redis="main", dlq="dlq:emails") == 2
    assert value(series, "opsloop_dlq_length", redis="main", dlq="dlq:render") == 1
    assert_age(
        value(series, "opsloop_dlq_oldest_age_seconds", redis="main", dlq="dlq:emails"), now - 900, before, after
    )
    assert_age(value(series, "opsloop_dlq_oldest_age_seconds", redis="main", dlq="dlq:render"), now - 30, before, after)
    assert "opsloop_queue_length" not in names(series)


async def test_empty_named_dlq_reads_zero(redis_server, write_config, exporter_client):
    cfg = write_config(
        {"redis": [{"name": "main", "url": redis_server.url}],
         "dlqs": [{"name": "emails", "redis": "main", "key": "dlq:emails"}]}
    )  # fmt: skip
    series = await scrape(await exporter_client(cfg))
    assert value(series, "opsloop_dlq_length", redis="main", dlq="emails") == 0


async def test_a_stream_dlq_has_dlq_help_and_no_consumer_group_series(redis_server, write_config, exporter_client):
    """Consumer groups on a DLQ stream are triage tools, not work: no opsloop_stream_group_* for them."""
    r = redis.Redis.from_url(redis_server.url)
    r.xadd("dlq:events", {"k": "v"})
    r.xgroup_create("dlq:events", "triage", id="0")
    cfg = write_config(
        {"redis": [{"name": "main", "url": redis_server.url}],
         "dlqs": [{"name": "events", "redis": "main", "key": "dlq:events"}]}
    )  # fmt: skip
    client = await exporter_client(cfg)
    text = await (await client.get("/metrics")).text()
    assert "# HELP opsloop_dlq_length Items in the dead-letter queue (0 when the key does not exist).\n" in text
    assert (
        "# HELP opsloop_dlq_oldest_age_seconds Age of the oldest item in the dead-letter queue (0 when empty).\n"
        in text
    )
    series = parse_metrics(text)
    assert value(series, "opsloop_dlq_length", redis="main", dlq="events") == 1
    assert [n for n in names(series) if n.startswith("opsloop_stream_group")] == []
