"""Worker counts: SCARD of a registration set, or the heartbeat keys that still exist.

Heartbeat keys carry a TTL, so a dead worker's key expires. Candidates come from cached SCAN discovery
and are counted with one ``EXISTS k1 k2 ...`` per group each scrape, so an expired worker drops out at
once and a new one appears at the next discovery refresh.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING

from opsloop.exporter.sources.base import Sample
from opsloop.exporter.sources.redis_discovery import KeyDiscovery
from opsloop.exporter.sources.redis_source import KeyLookups, Parser
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from opsloop.metric_contract import QUEUE_WORKERS, WORKERS

if TYPE_CHECKING:
    from opsloop.exporter.config import RedisConfig, WorkersConfig


class WorkersReader:
    """Every ``workers`` entry of one Redis, so queues served by several groups are summed once."""

    def __init__(self, entries: list[WorkersConfig], redis: RedisConfig, lookups: KeyLookups) -> None:
        self.entries = entries
        self.lookups = lookups
        self.redis_name = redis.name
        self.discoveries_by_entry = {
            i: KeyDiscovery(redis, e.heartbeat_pattern)
            for i, e in enumerate(entries)
            if e.heartbeat_pattern is not None
        }
        self._candidates: dict[int, list[str]] = {}

    def discoveries(self) -> list[KeyDiscovery]:
        return list(self.discoveries_by_entry.values())

    async def prepare(self, client: Redis) -> None:
        for i, discovery in self.discoveries_by_entry.items():
            self._candidates[i] = await discovery.current(client)

    def plan(self, pipe: Pipeline) -> Parser:
        looked_up: list[int] = []  # keys each entry's command reads: 1 for SCARD, n for EXISTS, 0 for none
        for i, entry in enumerate(self.entries):
            if entry.set is not None:
                pipe.scard(entry.set)
                looked_up.append(1)
            elif self._candidates.get(i):
                pipe.exists(*self._candidates[i])
                looked_up.append(len(self._candidates[i]))
            else:
                looked_up.append(0)
        return lambda replies: self._parse(looked_up, iter(replies))

    def _parse(self, looked_up: list[int], replies: Iterator[object]) -> list[Sample]:
        samples: list[Sample] = []
        per_queue: dict[str, float] = defaultdict(float)
        for entry, keys in zip(self.entries, looked_up, strict=True):
            reply = next(replies) if keys else 0  # no heartbeat key discovered: no live worker
            if isinstance(reply, Exception):
                continue
            count = int(reply)  # type: ignore[call-overload]
            # SCARD of a missing set is 0 (Redis deletes empty sets); EXISTS counts the keys it found.
            found = min(count, 1) if entry.set is not None else count
            self.lookups.add(found, keys - found)
            samples.append(Sample(WORKERS, (self.redis_name, entry.name), float(count)))
            for queue in entry.queues:
                per_queue[queue] += count
        samples.extend(Sample(QUEUE_WORKERS, (self.redis_name, q), n) for q, n in sorted(per_queue.items()))
        for discovery in self.discoveries_by_entry.values():
            samples.extend(discovery.samples())
        return samples
