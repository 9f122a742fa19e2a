"""Dead-letter queues: the queue reader under DLQ metric names (no stream group metrics)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsloop.exporter.sources.redis_queues import KeyMetrics, KeyReader
from opsloop.exporter.sources.redis_source import KeyLookups

from opsloop.metric_contract import DLQ_LENGTH, DLQ_OLDEST_AGE

if TYPE_CHECKING:
    from opsloop.exporter.config import KeyConfig, RedisConfig

DLQ_METRICS = KeyMetrics(DLQ_LENGTH, DLQ_OLDEST_AGE)


def dlq_reader(entry: KeyConfig, redis: RedisConfig, lookups: KeyLookups) -> KeyReader:
    return KeyReader(entry, redis, DLQ_METRICS, lookups)
