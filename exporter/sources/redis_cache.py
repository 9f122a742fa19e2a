"""Cache health from INFO (hits, misses, evictions, memory, clients), PING latency, and app counters.

``app_stats_pattern`` names hashes the application maintains itself (``HINCRBY cache:stats:users hits
1``); each numeric field becomes ``opsloop_app_cache_<field>_total{redis,cache}``, where ``cache`` is
the key without the pattern's literal prefix (``cache:stats:users`` -> ``users``).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from opsloop.exporter.sources.base import Metric, Sample
from opsloop.exporter.sources.redis_cluster import NodeUnreachable
from opsloop.exporter.sources.redis_discovery import KeyDiscovery
from opsloop.exporter.sources.redis_source import KeyLookups, Parser
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from opsloop.metric_contract import (
    CACHE_CLIENTS,
    CACHE_EVICTED_KEYS,
    CACHE_EXPIRED_KEYS,
    CACHE_HITS,
    CACHE_MEMORY_MAX,
    CACHE_MEMORY_USED,
    CACHE_MISSES,
    CACHE_PING,
    app_cache_metric,
)

if TYPE_CHECKING:
    from opsloop.exporter.config import CacheConfig, RedisConfig

log = logging.getLogger(__name__)

INFO_METRICS: tuple[tuple[str, Metric], ...] = (
    ("keyspace_hits", CACHE_HITS),
    ("keyspace_misses", CACHE_MISSES),
    ("evicted_keys", CACHE_EVICTED_KEYS),
    ("expired_keys", CACHE_EXPIRED_KEYS),
    ("used_memory", CACHE_MEMORY_USED),
    ("maxmemory", CACHE_MEMORY_MAX),
    ("connected_clients", CACHE_CLIENTS),
)
"""INFO fields and the metric each becomes."""


def _literal_prefix(pattern: str) -> str:
    return re.split(r"[*?\[\\]", pattern, maxsplit=1)[0]


class CacheReader:
    def __init__(self, entry: CacheConfig, redis: RedisConfig, lookups: KeyLookups) -> None:
        self.redis_name = redis.name
        self.lookups = lookups
        self.discovery = KeyDiscovery(redis, entry.app_stats_pattern) if entry.app_stats_pattern is not None else None
        self.prefix = _literal_prefix(entry.app_stats_pattern or "")
        self._ping = 0.0
        self._hashes: list[str] = []

    def discoveries(self) -> list[KeyDiscovery]:
        return [self.discovery] if self.discovery is not None else []

    async def prepare(self, client: Redis) -> None:
        started = time.perf_counter()
        await client.ping()
        self._ping = time.perf_counter() - started
        if self.discovery is not None:
            self._hashes = await self.discovery.current(client)

    def plan(self, pipe: Pipeline) -> Parser:
        pipe.info()
        hashes = list(self._hashes)
        for key in hashes:
            pipe.hgetall(key)
        return lambda replies: self._parse(hashes, replies)

    def _parse(self, hashes: list[str], replies: Sequence[object]) -> list[Sample]:
        labels = (self.redis_name,)
        samples = [Sample(CACHE_PING, labels, self._ping)]
        info = replies[0]
        if isinstance(info, NodeUnreachable):
            pass  # a cluster node is down: a partial sum would look like a counter reset, so publish none
        elif isinstance(info, Exception):
            raise info  # INFO failing means this Redis is not usable: fail the source
        else:
            assert isinstance(info, dict)
            samples.extend(Sample(m, labels, float(info[field])) for field, m in INFO_METRICS if field in info)
        for key, fields in zip(hashes, replies[1:], strict=True):
            if isinstance(fields, Exception):
                self.lookups.add(1, 0)
                continue  # WRONGTYPE: not a hash
            found = 1 if fields else 0  # an empty reply: the hash is gone, a miss
            self.lookups.add(found, 1 - found)
            cache = key.removeprefix(self.prefix) or key
            for field, raw in sorted(fields.items()):  # type: ignore[union-attr]
                try:
                    value = float(raw)
                except ValueError:
                    log.debug("non-numeric cache stat skipped", extra={"key": key, "field": field})
                    continue
                samples.append(Sample(app_cache_metric(field), (self.redis_name, cache), value))
        if self.discovery is not None:
            samples.extend(self.discovery.samples())
        return samples
