from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from opsloop.receiver.actions import Action
from opsloop.testsupport.servers import RedisServer


@pytest.fixture
def protected(redis_db: redis.Redis) -> str:
    """Turn on a password on the test's redis-server and return it."""
    redis_db.config_set("requirepass", "s3cret-pw")
    return "s3cret-pw"


async def test_password_from_a_file(
    redis_server: RedisServer, protected: str, tmp_path: Path, make_action: Callable[..., Action]
) -> None:
    secret = tmp_path / "redis-password"
    secret.write_text(protected + "\n")
    action = make_action(
        type="redis_set", redis=redis_server.url, password_file=str(secret), key="k", value="v", ttl=60
    )
    result = await action.run({})
    assert result.ok, result.detail
    assert redis.Redis.from_url(redis_server.url, password=protected).get("k") == b"v"


async def test_url_from_the_environment_and_a_wrong_password(
    redis_server: RedisServer, protected: str, monkeypatch: pytest.MonkeyPatch, make_action: Callable[..., Action]
) -> None:
    monkeypatch.setenv("OPSLOOP_TEST_REDIS_URL", redis_server.url.replace("redis://", "redis://:wrong@"))
    action = make_action(type="redis_set", redis_env="OPSLOOP_TEST_REDIS_URL", key="k", value="v", ttl=60)
    result = await action.run({})
    assert not result.ok
    assert "wrong" not in result.detail
    assert result.detail.startswith("AuthenticationError")
