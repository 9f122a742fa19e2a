"""Producers LPUSH, consumers RPOP: in these lists the oldest item is the last one (right end)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from opsloop.receiver.actions import Action
from opsloop.testsupport.servers import RedisServer

VALUES = {"dlq": "dlq:emails", "name": "emails"}


@pytest.fixture
def requeue(redis_server: RedisServer, make_action: Callable[..., Action]) -> Callable[..., Action]:
    def build(**options: Any) -> Action:
        return make_action(
            type="dlq_requeue", redis=redis_server.url, **{"from": "{dlq}", "to": "queue:{name}"}, **options
        )

    return build


def fill_dlq(db: redis.Redis, count: int) -> None:
    """m0 failed first (oldest, right end), m{count-1} last."""
    db.lpush("dlq:emails", *[f"m{i}" for i in range(count)])


def consume(db: redis.Redis, key: str) -> list[str]:
    """Pop everything from the consuming end, in the order a worker would see it."""
    out = []
    while (item := db.rpop(key)) is not None:
        out.append(item.decode())
    return out


async def test_the_oldest_items_go_to_the_consuming_end_in_order(
    redis_db: redis.Redis, requeue: Callable[..., Action]
) -> None:
    fill_dlq(redis_db, 10)
    redis_db.lpush("queue:emails", "waiting-1", "waiting-2")
    result = await requeue(max_items=7, batch=3).run(VALUES)
    assert result.ok
    assert result.detail == "moved 7 items dlq:emails -> queue:emails (3 left, max_items 7 reached)"
    assert consume(redis_db, "queue:emails") == [*[f"m{i}" for i in range(7)], "waiting-1", "waiting-2"]
    assert consume(redis_db, "dlq:emails") == ["m7", "m8", "m9"]


async def test_producer_end_rejoins_the_line_behind_waiting_work(
    redis_db: redis.Redis, requeue: Callable[..., Action]
) -> None:
    fill_dlq(redis_db, 5)
    redis_db.lpush("queue:emails", "waiting")
    result = await requeue(max_items=4, batch=3, position="producer_end").run(VALUES)
    assert result.detail == "moved 4 items dlq:emails -> queue:emails (1 left, max_items 4 reached)"
    assert consume(redis_db, "queue:emails") == ["waiting", "m0", "m1", "m2", "m3"]
    assert consume(redis_db, "dlq:emails") == ["m4"]


async def test_a_dlq_smaller_than_max_items_is_emptied(redis_db: redis.Redis, requeue: Callable[..., Action]) -> None:
    fill_dlq(redis_db, 250)
    result = await requeue(max_items=1000, batch=100).run(VALUES)
    assert result.detail == "moved 250 items dlq:emails -> queue:emails"
    assert consume(redis_db, "queue:emails") == [f"m{i}" for i in range(250)]
    assert redis_db.exists("dlq:emails") == 0


async def test_an_empty_dlq_moves_nothing(redis_db: redis.Redis, requeue: Callable[..., Action]) -> None:
    result = await requeue().run(VALUES)
    assert (result.ok, result.detail) == (True, "moved 0 items dlq:emails -> queue:emails")
    assert redis_db.exists("queue:emails") == 0


async def test_binary_items_move_unchanged(redis_db: redis.Redis, requeue: Callable[..., Action]) -> None:
    payloads = [b"\x00\xff\x80binary", b'{"to": "a@example.com"}', b""]
    redis_db.lpush("dlq:emails", *payloads)
    assert (await requeue().run(VALUES)).ok
    assert [redis_db.rpop("queue:emails") for _ in payloads] == payloads


async def test_sorted_sets_move_lowest_score_first_keeping_scores(
    redis_db: redis.Redis, requeue: Callable[..., Action]
) -> None:
    redis_db.zadd("dlq:emails", {f"job{i}": 1000 + i for i in range(5)})
    result = await requeue(max_items=3, batch=2).run(VALUES)
    assert result.detail == "moved 3 items dlq:emails -> queue:emails (2 left, max_items 3 reached)"
    assert redis_db.zrange("queue:emails", 0, -1, withscores=True) == [
        (b"job0", 1000),
        (b"job1", 1001),
        (b"job2", 1002),
    ]
    assert redis_db.zrange("dlq:emails", 0, -1) == [b"job3", b"job4"]


async def test_streams_and_mismatched_types_are_refused_untouched(
    redis_db: redis.Redis, requeue: Callable[..., Action]
) -> None:
    redis_db.xadd("dlq:emails", {"job": "1"})
    result = await requeue().run(VALUES)
    assert (result.ok, result.detail) == (
        False,
        "ResponseError: dlq_requeue moves lists and sorted sets; dlq:emails is a stream",
    )
    redis_db.delete("dlq:emails")
    fill_dlq(redis_db, 2)
    redis_db.zadd("queue:emails", {"x": 1})
    result = await requeue().run(VALUES)
    assert (result.ok, result.detail) == (False, "ResponseError: dlq:emails is a list but queue:emails is a zset")
    assert redis_db.llen("dlq:emails") == 2


async def test_dry_run_counts_and_touches_nothing(redis_db: redis.Redis, requeue: Callable[..., Action]) -> None:
    fill_dlq(redis_db, 12)
    result = await requeue(max_items=5).run(VALUES, dry_run=True)
    assert result == type(result)(True, "would move 5 of 12 items dlq:emails -> queue:emails at the consumer end", True)
    assert redis_db.llen("dlq:emails") == 12
    assert redis_db.exists("queue:emails") == 0


async def test_rate_spreads_batches_over_time(redis_db: redis.Redis, requeue: Callable[..., Action]) -> None:
    fill_dlq(redis_db, 10)
    started = time.monotonic()
    result = await requeue(batch=2, rate=20).run(VALUES)
    elapsed = time.monotonic() - started
    assert result.detail == "moved 10 items dlq:emails -> queue:emails"
    # The rate is a floor on the duration: the fifth batch may start 8 items / 20 per second = 0.4 s in.
    # No ceiling: how much longer it takes is the machine's speed, not the pacing under test.
    assert elapsed >= 0.39


async def test_a_timeout_reports_what_was_moved(redis_db: redis.Redis, requeue: Callable[..., Action]) -> None:
    fill_dlq(redis_db, 10)
    result = await requeue(batch=1, rate=10, timeout="250ms").run(VALUES)
    assert not result.ok
    moved = redis_db.llen("queue:emails")
    assert 1 <= moved < 10
    assert result.detail == f"timed out after 0.25s; moved {moved} items dlq:emails -> queue:emails"
    assert moved + redis_db.llen("dlq:emails") == 10


@pytest.mark.parametrize(
    "values", [{"dlq": "dlq:emails", "name": "$(rm -rf /)"}, {"dlq": "dlq:emails", "name": "{{ 7*7 }}"}]
)
async def test_label_values_are_only_key_names(
    redis_db: redis.Redis, requeue: Callable[..., Action], values: dict[str, str]
) -> None:
    fill_dlq(redis_db, 1)
    assert (await requeue().run(values)).ok
    assert redis_db.lrange(f"queue:{values['name']}", 0, -1) == [b"m0"]


async def test_values_naming_the_same_key_are_refused(
    redis_server: RedisServer, redis_db: redis.Redis, make_action: Callable[..., Action]
) -> None:
    fill_dlq(redis_db, 3)
    action = make_action(type="dlq_requeue", redis=redis_server.url, **{"from": "{a}", "to": "{b}"})
    result = await action.run({"a": "dlq:emails", "b": "dlq:emails"})
    assert (result.ok, result.detail) == (False, "refusing to move dlq:emails onto itself")
    assert consume(redis_db, "dlq:emails") == ["m0", "m1", "m2"]


async def test_dry_run_of_a_sorted_set(redis_db: redis.Redis, requeue: Callable[..., Action]) -> None:
    redis_db.zadd("dlq:emails", {"a": 1, "b": 2})
    result = await requeue().run(VALUES, dry_run=True)
    assert result.detail == "would move 2 of 2 items dlq:emails -> queue:emails"
    assert redis_db.zcard("dlq:emails") == 2
