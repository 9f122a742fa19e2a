"""Worker counts: SCARD of a registration set, or the heartbeat keys that still exist.

Heartbeat keys carry a TTL, so a dead worker's key expires. Candidates come from cached SCAN discovery
and are counted with one ``EXISTS k1 k2 ...`` per group each scrape, so an expired worker drops out at
once and a new one appears at the next discovery refresh.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from exporter.config import RedisConfig, WorkersConfig
from exporter.sources.base import Metric, Sample
from exporter.sources.redis_discovery import KeyDiscovery
from exporter.sources.redis_source import Parser

WORKERS = Metric("opsloop_workers", "gauge", "Live workers in the group.", ("redis", "name"))
QUEUE_WORKERS = Metric(
    "opsloop_queue_workers", "gauge", "Live workers serving the queue (sum over groups that list it).",
    ("redis", "queue"),
)  # fmt: skip


class WorkersReader:
    """Every ``workers`` entry of one Redis, so queues served by several groups are summed once."""

    def __init__(self, entries: list[WorkersConfig], redis: RedisConfig) -> None:
        self.entries = entries
        self.redis_name = redis.name
        self.discoveries = {
            i: KeyDiscovery(redis, e.heartbeat_pattern)
            for i, e in enumerate(entries)
            if e.heartbeat_pattern is not None
        }
        self._candidates: dict[int, list[str]] = {}

    async def prepare(self, client: Redis) -> None:
        for i, discovery in self.discoveries.items():
            self._candidates[i] = await discovery.current(client)

    def plan(self, pipe: Pipeline) -> Parser:
        asked: list[bool] = []
        for i, entry in enumerate(self.entries):
            if entry.set is not None:
                pipe.scard(entry.set)
            elif self._candidates.get(i):
                pipe.exists(*self._candidates[i])
            asked.append(entry.set is not None or bool(self._candidates.get(i)))
        return lambda replies: self._parse(asked, iter(replies))

    def _parse(self, asked: list[bool], replies: Iterator[object]) -> list[Sample]:
        samples: list[Sample] = []
        per_queue: dict[str, float] = defaultdict(float)
        for entry, was_asked in zip(self.entries, asked, strict=True):
            reply = next(replies) if was_asked else 0  # no heartbeat key discovered: no live worker
            if isinstance(reply, Exception):
                continue
            count = float(reply)  # type: ignore[arg-type]
            samples.append(Sample(WORKERS, (self.redis_name, entry.name), count))
            for queue in entry.queues:
                per_queue[queue] += count
        samples.extend(Sample(QUEUE_WORKERS, (self.redis_name, q), n) for q, n in sorted(per_queue.items()))
        for discovery in self.discoveries.values():
            samples.extend(discovery.samples())
        return samples
