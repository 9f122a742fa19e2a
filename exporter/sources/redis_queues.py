"""Queue keys: length and oldest-item age for lists, sorted sets and streams, plus stream groups.

The type of each key is detected once (TYPE) and cached; a key that Redis deleted because it was an
empty list reads as a list of length 0, so a configured queue never drops out of the output. A reply
of the wrong type (the key was recreated as something else) clears the cached type for a new TYPE on
the next scrape. DLQs use the same reader with their own metric names (``redis_dlq.py``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from exporter.config import KeyConfig, OldestAgeConfig, RedisConfig
from exporter.sources.base import Metric, Sample
from exporter.sources.redis_discovery import KeyDiscovery
from exporter.sources.redis_source import Parser

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeyMetrics:
    """The metric names one kind of key (queue or DLQ) is published under."""

    label: str
    length: Metric
    oldest_age: Metric
    group_pending: Metric | None = None
    group_lag: Metric | None = None


def key_metrics(label: str, prefix: str, what: str, groups: bool) -> KeyMetrics:
    labels = ("redis", label)
    group_labels = ("redis", label, "group")
    return KeyMetrics(
        label=label,
        length=Metric(f"{prefix}_length", "gauge", f"Items in the {what} (0 when the key does not exist).", labels),
        oldest_age=Metric(
            f"{prefix}_oldest_age_seconds",
            "gauge",
            f"Age of the oldest item in the {what} (0 when empty).",
            labels,
        ),
        group_pending=Metric(
            "opsloop_stream_group_pending", "gauge", "Entries delivered to the group but not acknowledged.",
            group_labels,
        ) if groups else None,
        group_lag=Metric(
            "opsloop_stream_group_lag", "gauge", "Entries in the stream not yet delivered to the group.",
            group_labels,
        ) if groups else None,
    )  # fmt: skip


QUEUE_METRICS = key_metrics("queue", "opsloop_queue", "queue", groups=True)


def parse_timestamp(value: object) -> float | None:
    """Unix seconds from a number (seconds, or milliseconds when too large for seconds) or ISO 8601."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value / 1000.0 if value > 1e11 else float(value)
    if isinstance(value, str):
        try:
            return parse_timestamp(float(value))
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            return None  # a naive time is ambiguous: refuse rather than guess the zone
        return parsed.timestamp()
    return None


def _age(oldest: float | None, now: float) -> float:
    return max(0.0, now - oldest) if oldest is not None else 0.0


class KeyReader:
    """Reads one ``queues``/``dlqs`` entry: a fixed key or every key a pattern discovers."""

    def __init__(self, entry: KeyConfig, redis: RedisConfig, metrics: KeyMetrics) -> None:
        self.entry = entry
        self.redis_name = redis.name
        self.metrics = metrics
        self.oldest: OldestAgeConfig | None = entry.oldest_age
        self.discovery = (
            KeyDiscovery(redis.name, entry.pattern, redis.max_keys_per_pattern, redis.discovery_interval)
            if entry.pattern is not None
            else None
        )
        self.types: dict[str, str] = {}
        self._keys: list[str] = []

    def _label(self, key: str) -> str:
        return (self.entry.name or key) if self.discovery is None else key

    async def prepare(self, client: Redis) -> None:
        if self.discovery is not None:
            self._keys = await self.discovery.current(client)
            known = set(self._keys)
            self.types = {k: t for k, t in self.types.items() if k in known}
        else:
            assert self.entry.key is not None
            self._keys = [self.entry.key]
        unknown = [k for k in self._keys if k not in self.types]
        if unknown:
            pipe = client.pipeline(transaction=False)
            for key in unknown:
                pipe.type(key)
            for key, kind in zip(unknown, await pipe.execute(), strict=True):
                self.types[key] = kind

    def plan(self, pipe: Pipeline) -> Parser:
        planned: list[tuple[str, str, int]] = []
        for key in self._keys:
            kind = self.types.get(key, "none")
            start = len(pipe.command_stack)
            if kind == "zset":
                pipe.zcard(key)
                pipe.zrange(key, 0, 0, withscores=True)
            elif kind == "stream":
                pipe.xlen(key)
                pipe.xrange(key, "-", "+", count=1)
                if self.metrics.group_pending is not None:
                    pipe.xinfo_groups(key)
            else:  # list, or "none": a deleted empty list reads as length 0
                kind = "list"
                pipe.llen(key)
                if self.oldest is not None:
                    pipe.lindex(key, -1 if self.oldest.end == "right" else 0)
            planned.append((key, kind, len(pipe.command_stack) - start))
        return lambda replies: self._parse(planned, replies)

    def _parse(self, planned: list[tuple[str, str, int]], replies: Sequence[object]) -> list[Sample]:
        now = time.time()
        samples: list[Sample] = []
        pos = 0
        for key, kind, count in planned:
            part = replies[pos : pos + count]
            pos += count
            failed = next((r for r in part if isinstance(r, Exception)), None)
            if failed is not None:
                # Usually WRONGTYPE after the key was recreated: detect its type again next scrape.
                self.types.pop(key, None)
                log.info("key read failed", extra={"key": key, "error": str(failed)})
                continue
            samples.extend(self._key_samples(key, kind, part, now))
        if self.discovery is not None:
            samples.extend(self.discovery.samples())
        return samples

    def _key_samples(self, key: str, kind: str, part: Sequence[object], now: float) -> list[Sample]:
        labels = (self.redis_name, self._label(key))
        m = self.metrics
        length = float(part[0])  # type: ignore[arg-type]
        samples = [Sample(m.length, labels, length)]
        if kind == "zset":
            first = part[1]
            score = first[0][1] if first else None  # type: ignore[index]
            samples.append(Sample(m.oldest_age, labels, _age(parse_timestamp(score), now)))
        elif kind == "stream":
            first = part[1]
            entry_ms = int(first[0][0].split("-")[0]) if first else None  # type: ignore[index]
            samples.append(Sample(m.oldest_age, labels, _age(entry_ms / 1000 if entry_ms else None, now)))
            if m.group_pending is not None and m.group_lag is not None:
                for group in part[2]:  # type: ignore[union-attr]
                    group_labels = (*labels, str(group["name"]))
                    samples.append(Sample(m.group_pending, group_labels, float(group["pending"])))
                    if group.get("lag") is not None:  # Redis leaves lag unset when it cannot know it
                        samples.append(Sample(m.group_lag, group_labels, float(group["lag"])))
        elif self.oldest is not None:
            age = self._list_item_age(part[1], now)
            if age is not None:
                samples.append(Sample(m.oldest_age, labels, age))
        return samples

    def _list_item_age(self, item: object, now: float) -> float | None:
        """Age from the oldest item's JSON field; None (no sample) when the item has no usable time."""
        if item is None:
            return 0.0
        assert self.oldest is not None
        try:
            payload = json.loads(item)  # type: ignore[arg-type]
            stamp = parse_timestamp(payload.get(self.oldest.field)) if isinstance(payload, dict) else None
        except ValueError:
            stamp = None
        if stamp is None:
            log.info("oldest item has no usable timestamp", extra={"field": self.oldest.field})
            return None
        return _age(stamp, now)
