from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from opsloop.receiver.actions import Action
from opsloop.testsupport.servers import RedisServer


@pytest.fixture
def switch(redis_server: RedisServer, make_action: Callable[..., Action]) -> Action:
    return make_action(
        type="redis_set", redis=redis_server.url, key="maintenance:{service}", value="{reason}", ttl="5m"
    )


async def test_sets_the_key_with_its_ttl(redis_db: redis.Redis, switch: Action) -> None:
    result = await switch.run({"service": "checkout", "reason": "db failover"})
    assert (result.ok, result.detail) == (True, "set maintenance:checkout = 'db failover' with a ttl of 300s")
    assert redis_db.get("maintenance:checkout") == b"db failover"
    assert 299_000 < redis_db.pttl("maintenance:checkout") <= 300_000


async def test_an_existing_key_is_overwritten_and_its_ttl_renewed(redis_db: redis.Redis, switch: Action) -> None:
    redis_db.set("maintenance:checkout", "old")
    await switch.run({"service": "checkout", "reason": "again"})
    assert redis_db.get("maintenance:checkout") == b"again"
    assert redis_db.pttl("maintenance:checkout") > 299_000


async def test_hostile_values_are_stored_as_plain_text(redis_db: redis.Redis, switch: Action) -> None:
    await switch.run({"service": "x", "reason": "$(rm -rf /) {{ 7*7 }}"})
    assert redis_db.get("maintenance:x") == b"$(rm -rf /) {{ 7*7 }}"


async def test_dry_run_writes_nothing(redis_db: redis.Redis, switch: Action) -> None:
    result = await switch.run({"service": "checkout", "reason": "test"}, dry_run=True)
    assert (result.dry_run, result.detail) == (True, "would set maintenance:checkout = 'test' with a ttl of 300s")
    assert redis_db.dbsize() == 0
