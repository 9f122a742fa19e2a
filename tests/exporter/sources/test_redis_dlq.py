"""DLQ metrics: same reader as queues, under the opsloop_dlq_* names and the ``dlq`` label."""

from __future__ import annotations

import json
import time

import redis

from tests.exporter.scrapes import assert_age, names, scrape, timed_scrape, value


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
