"""Helpers for the action tests: build an action from a plain config mapping, as the core does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from opsloop.receiver.actions import Action, build_action
from opsloop.receiver.actions.config import ActionConfig
from opsloop.testsupport.servers import RedisServer
from pydantic import TypeAdapter

_ADAPTER: TypeAdapter[Any] = TypeAdapter(ActionConfig)


@pytest.fixture
def parse_action() -> Callable[..., Any]:
    """Validate one action entry the way a config file would be."""
    return lambda **config: _ADAPTER.validate_python(config)


@pytest.fixture
def make_action(parse_action: Callable[..., Any]) -> Callable[..., Action]:
    return lambda **config: build_action(parse_action(**config))


@pytest.fixture
def redis_db(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A synchronous client for arranging and checking data in the test's own redis-server."""
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()
