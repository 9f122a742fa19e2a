"""Base of the Redis actions: resolves the URL and password once, opens one connection per run.

A connection per run keeps actions free of event-loop state between runs; recovery actions run rarely,
so the extra connect costs nothing that matters.
"""

from __future__ import annotations

from typing import ClassVar, TypeVar

from opsloop.receiver.actions.base import BaseAction
from opsloop.receiver.actions.config import RedisActionConfig
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.connection import parse_url
from redis.exceptions import RedisClusterException, RedisError

from opsloop.redis_connect import connect, resolve_target

RC = TypeVar("RC", bound=RedisActionConfig)


class RedisAction(BaseAction[RC]):
    failures: ClassVar[tuple[type[Exception], ...]] = (RedisError, RedisClusterException, OSError)
    cluster_safe: ClassVar[bool] = True
    cluster_unsafe_reason: ClassVar[str] = ""

    def __init__(self, config: RC) -> None:
        super().__init__(config)
        url = config.secret("redis")
        # A malformed URL or an unreadable sentinel password fails at startup, not at 3 a.m.
        self._target = resolve_target(config, url, config.secret("password"))
        if url is not None and self._target.mode != "cluster":
            parse_url(url)
        if self.cluster and not self.cluster_safe:  # a cluster URL from a secret is known only now
            raise ValueError(f"{self.type} cannot run on a Redis Cluster: {self.cluster_unsafe_reason}")

    @property
    def redis_id(self) -> str:
        """Names the Redis deployment (no credentials) in journal records."""
        return f"{self._target.mode}:" + ",".join(sorted(f"{h}:{p}" for h, p in self._target.cluster_nodes()))

    @property
    def cluster(self) -> bool:
        return self._target.mode == "cluster"

    def connect(self) -> Redis | RedisCluster:
        """A client for one run (use as ``async with``); binary-safe, bounded by the action timeout.

        With sentinels, each run asks them for the current primary, so a failover needs no restart.
        """
        return connect(self._target, socket_timeout=self.config.timeout, socket_connect_timeout=self.config.timeout)
