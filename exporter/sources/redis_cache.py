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

from opsloop.exporter.config import CacheConfig, RedisConfig
from opsloop.exporter.sources.base import Metric, Sample
from opsloop.exporter.sources.redis_cluster import NodeUnreachable
from opsloop.exporter.sources.redis_discovery import KeyDiscovery
from opsloop.exporter.sources.redis_source import KeyLookups, Parser
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

log = logging.getLogger(__name__)

_R = ("redis",)
INFO_METRICS: tuple[tuple[str, Metric], ...] = (
    ("keyspace_hits", Metric("opsloop_cache_hits", "counter", "Successful key lookups (INFO keyspace_hits).", _R)),
    ("keyspace_misses", Metric("opsloop_cache_misses", "counter", "Failed key lookups (INFO keyspace_misses).", _R)),
    ("evicted_keys", Metric("opsloop_cache_evicted_keys", "counter", "Keys evicted by maxmemory policy.", _R)),
    ("expired_keys", Metric("opsloop_cache_expired_keys", "counter", "Keys removed on TTL expiry.", _R)),
    ("used_memory", Metric("opsloop_cache_memory_used_bytes", "gauge", "Memory used by Redis.", _R)),
    ("maxmemory", Metric("opsloop_cache_memory_max_bytes", "gauge", "maxmemory setting; 0 means no limit.", _R)),
    ("connected_clients", Metric("opsloop_cache_connected_clients", "gauge", "Client connections.", _R)),
)  # fmt: skip
PING = Metric("opsloop_cache_ping_seconds", "gauge", "Round trip of a PING to Redis.", _R)
_FIELD = re.compile(r"[^a-zA-Z0-9_]")


def app_metric(field: str) -> Metric:
    name = _FIELD.sub("_", field).lower().removesuffix("_total")
    return Metric(
        f"opsloop_app_cache_{name}", "counter", f"Application cache counter {field!r} from its stats hash.",
        ("redis", "cache"),
    )  # fmt: skip


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
        samples = [Sample(PING, labels, self._ping)]
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
                samples.append(Sample(app_metric(field), (self.redis_name, cache), value))
        if self.discovery is not None:
            samples.extend(self.discovery.samples())
        return samples
