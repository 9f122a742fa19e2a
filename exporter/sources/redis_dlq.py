"""Dead-letter queues: the queue reader under DLQ metric names (no stream group metrics)."""

from __future__ import annotations

from opsloop.exporter.config import KeyConfig, RedisConfig
from opsloop.exporter.sources.redis_queues import KeyMetrics, KeyReader, key_metrics
from opsloop.exporter.sources.redis_source import KeyLookups

DLQ_METRICS: KeyMetrics = key_metrics("dlq", "opsloop_dlq", "dead-letter queue", groups=False)


def dlq_reader(entry: KeyConfig, redis: RedisConfig, lookups: KeyLookups) -> KeyReader:
    return KeyReader(entry, redis, DLQ_METRICS, lookups)
