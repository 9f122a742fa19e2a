"""dlq_requeue on a real Sentinel set: a failover in the middle of a move loses and duplicates nothing."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import pytest
import redis
from opsloop.receiver.actions import build_action
from opsloop.receiver.actions.config import ActionConfig
from opsloop.testsupport.redis_topologies import RedisSentinelSet
from opsloop.testsupport.servers import wait_until
from pydantic import TypeAdapter

pytestmark = pytest.mark.slow
ADAPTER: TypeAdapter[ActionConfig] = TypeAdapter(ActionConfig)
ITEMS = 3000


@pytest.fixture
def sentinel_set() -> Iterator[RedisSentinelSet]:
    with RedisSentinelSet() as topology:
        yield topology


def everything(port: int) -> list[bytes]:
    with redis.Redis("127.0.0.1", port) as client:
        return client.lrange("queue:mail", 0, -1) + client.lrange("dlq:mail", 0, -1)


async def test_a_failover_mid_requeue_loses_and_duplicates_nothing(sentinel_set):
    with redis.Redis("127.0.0.1", sentinel_set.primary.port) as primary:
        primary.lpush("dlq:mail", *[f"m{i}" for i in range(ITEMS)])
        primary.wait(1, 5000)
    config = {
        "type": "dlq_requeue", "mode": "sentinel", "sentinels": sentinel_set.sentinel_addresses,
        "primary_name": sentinel_set.primary_name, "from": "dlq:mail", "to": "queue:mail",
        "max_items": ITEMS, "batch": 5, "rate": 2000, "timeout": 20,
    }  # fmt: skip
    action = build_action(ADAPTER.validate_python(config))
    run = asyncio.create_task(action.run({}))
    with redis.Redis("127.0.0.1", sentinel_set.primary.port) as primary:
        # 3000 items at 2000 a second: the failover comes once the first batch has landed, mid-move
        await asyncio.to_thread(wait_until, lambda: primary.llen("queue:mail") > 0, 10, "the requeue to start")
    new = await asyncio.to_thread(sentinel_set.failover)
    first = await run
    with redis.Redis("127.0.0.1", new.port) as primary:
        moved_first = primary.llen("queue:mail")
    second = await action.run({})  # the next run reaches the new primary with no restart
    assert second.ok, second.detail
    assert 0 < moved_first < ITEMS or first.ok  # the failover really happened mid-move (or right after)
    items = everything(new.port)
    assert Counter(items) == Counter(f"m{i}".encode() for i in range(ITEMS))  # none lost, none twice
    with redis.Redis("127.0.0.1", new.port) as primary:
        assert primary.llen("dlq:mail") == 0
