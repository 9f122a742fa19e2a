from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from opsloop.receiver.actions import Action
from opsloop.receiver.actions.cache_clear import escape_glob
from opsloop.testsupport.servers import RedisServer


@pytest.fixture
def clear(redis_server: RedisServer, make_action: Callable[..., Action]) -> Callable[..., Action]:
    def build(**options: Any) -> Action:
        return make_action(type="cache_clear", redis=redis_server.url, **{"pattern": "cache:user:{id}:*", **options})

    return build


def command_counts(db: redis.Redis) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): stat["calls"] for name, stat in db.info("commandstats").items()}


async def test_only_matching_keys_are_unlinked_with_scan(redis_db: redis.Redis, clear: Callable[..., Action]) -> None:
    redis_db.mset({f"cache:user:42:{i}": "x" for i in range(30)} | {"cache:user:7:a": "x", "queue:user:42:a": "x"})
    redis_db.config_resetstat()
    result = await clear(batch=10).run({"id": "42"})
    assert (result.ok, result.detail) == (True, "unlinked 30 keys matching cache:user:42:*")
    used = command_counts(redis_db)
    assert used["scan"] >= 3  # 32 keys, 10 a step
    assert used["unlink"] >= 3
    assert not {"keys", "flushall", "flushdb", "del"} & set(used)
    assert sorted(redis_db.keys("*")) == [b"cache:user:7:a", b"queue:user:42:a"]


async def test_glob_characters_in_values_match_only_themselves(
    redis_db: redis.Redis, clear: Callable[..., Action]
) -> None:
    redis_db.mset({"cache:user:*:a": "x", "cache:user:1:a": "x", "cache:user:[1]:a": "x"})
    assert (await clear().run({"id": "*"})).detail == "unlinked 1 keys matching cache:user:\\*:*"
    assert (await clear().run({"id": "[1]"})).detail == "unlinked 1 keys matching cache:user:\\[1\\]:*"
    assert redis_db.keys("*") == [b"cache:user:1:a"]


def test_escape_glob() -> None:
    assert escape_glob("a*b?c[d]e\\f") == "a\\*b\\?c\\[d\\]e\\\\f"


async def test_max_keys_caps_one_run(redis_db: redis.Redis, clear: Callable[..., Action]) -> None:
    redis_db.mset({f"cache:user:42:{i}": "x" for i in range(50)})
    result = await clear(max_keys=20, batch=7).run({"id": "42"})
    assert result.detail == "unlinked 20 keys matching cache:user:42:*; stopped at max_keys 20, more may remain"
    assert redis_db.dbsize() == 30


async def test_dry_run_counts_and_deletes_nothing(redis_db: redis.Redis, clear: Callable[..., Action]) -> None:
    redis_db.mset({f"cache:user:42:{i}": "x" for i in range(12)})
    result = await clear().run({"id": "42"}, dry_run=True)
    assert (result.ok, result.dry_run, result.detail) == (True, True, "would unlink 12 keys matching cache:user:42:*")
    assert redis_db.dbsize() == 12
