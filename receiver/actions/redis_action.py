"""Base of the Redis actions: resolves the URL and password once, opens one connection per run.

A connection per run keeps actions free of event-loop state between runs; recovery actions run rarely,
so the extra connect costs nothing that matters.
"""

from __future__ import annotations

from typing import ClassVar, TypeVar

from opsloop.receiver.actions.base import BaseAction
from opsloop.receiver.actions.config import RedisActionConfig
from redis.asyncio import Redis
from redis.asyncio.connection import parse_url
from redis.exceptions import RedisError

RC = TypeVar("RC", bound=RedisActionConfig)


class RedisAction(BaseAction[RC]):
    failures: ClassVar[tuple[type[Exception], ...]] = (RedisError, OSError)

    def __init__(self, config: RC) -> None:
        super().__init__(config)
        url = config.secret("redis")
        assert url is not None  # the config requires exactly one of redis, redis_env, redis_file
        parse_url(url)  # a malformed URL from the environment or a file fails at startup, not at 3 a.m.
        self._url = url
        self._password = config.secret("password")

    def connect(self) -> Redis:
        """A client for one run (use as ``async with``); binary-safe, bounded by the action timeout."""
        options: dict[str, object] = {
            "socket_timeout": self.config.timeout,
            "socket_connect_timeout": self.config.timeout,
        }
        if self._password is not None:
            options["password"] = self._password
        return Redis.from_url(self._url, **options)
