"""The run envelope, exercised through real actions against a real (sometimes frozen) redis-server."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest
import redis
from opsloop.receiver.actions import Action
from opsloop.testsupport.servers import RedisServer, free_port


async def test_a_hung_server_is_bounded_by_the_timeout(
    redis_server: RedisServer, redis_db: redis.Redis, make_action: Callable[..., Action]
) -> None:
    redis_db.lpush("dlq:emails", "a", "b")
    action = make_action(type="dlq_requeue", redis=redis_server.url, timeout="500ms", **{"from": "{dlq}", "to": "q"})
    redis_server.pause()
    try:
        started = time.monotonic()
        result = await action.run({"dlq": "dlq:emails"})
        elapsed = time.monotonic() - started
    finally:
        redis_server.resume()
    assert not result.ok
    assert result.detail.startswith("timed out after 0.5s")
    # The run returned while the server was still frozen (it resumes only afterwards), so the timeout
    # fired; it did not fire before its 0.5 s. How soon after is the machine's speed, not asserted.
    assert elapsed >= 0.45
    assert redis_db.llen("dlq:emails") == 2


async def test_an_unreachable_server_is_a_failed_result(make_action: Callable[..., Action]) -> None:
    action = make_action(type="redis_set", redis=f"redis://127.0.0.1:{free_port()}/0", key="k", value="v", ttl=60)
    result = await action.run({})
    assert not result.ok
    assert result.detail.startswith("ConnectionError: ")


async def test_every_run_is_logged_once_with_its_outcome(
    redis_server: RedisServer, make_action: Callable[..., Action], caplog: pytest.LogCaptureFixture
) -> None:
    action = make_action(type="redis_set", redis=redis_server.url, key="flag:{name}", value="on", ttl=60)
    with caplog.at_level(logging.INFO, logger="opsloop.receiver.actions.base"):
        ok = await action.run({"name": "checkout"})
        missing = await action.run({})
    records = [r for r in caplog.records if r.getMessage() == "action finished"]
    assert [(r.levelno, r.action, r.ok, r.detail) for r in records] == [  # type: ignore[attr-defined]
        (logging.INFO, "redis_set", True, ok.detail),
        (logging.WARNING, "redis_set", False, missing.detail),
    ]
    assert missing.detail == "MissingValue: no value for {name} (known: none)"


async def test_dry_run_in_config_wins_over_the_call(
    redis_server: RedisServer, redis_db: redis.Redis, make_action: Callable[..., Action]
) -> None:
    action = make_action(type="redis_set", redis=redis_server.url, key="k", value="v", ttl=60, dry_run=True)
    result = await action.run({}, dry_run=False)
    assert result.dry_run
    assert redis_db.exists("k") == 0
