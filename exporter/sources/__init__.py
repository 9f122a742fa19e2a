"""Sources the exporter reads: one per Redis server and one for PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsloop.exporter.sources.base import Source
from opsloop.exporter.sources.frameworks import framework_reader
from opsloop.exporter.sources.redis_cache import CacheReader
from opsloop.exporter.sources.redis_dlq import dlq_reader
from opsloop.exporter.sources.redis_queues import QUEUE_METRICS, KeyReader
from opsloop.exporter.sources.redis_source import KeyLookups, RedisReader, RedisSource
from opsloop.exporter.sources.redis_workers import WorkersReader

if TYPE_CHECKING:
    from opsloop.exporter.config import ExporterConfig


def build_sources(config: ExporterConfig) -> list[Source]:
    """One RedisSource per configured Redis that something reads, then PostgreSQL if configured."""
    sources: list[Source] = []
    for redis in config.redis:
        lookups = KeyLookups()
        readers: list[RedisReader] = []
        readers += [KeyReader(q, redis, QUEUE_METRICS, lookups) for q in config.queues if q.redis == redis.name]
        readers += [dlq_reader(d, redis, lookups) for d in config.dlqs if d.redis == redis.name]
        workers = [w for w in config.workers if w.redis == redis.name]
        if workers:
            readers.append(WorkersReader(workers, redis, lookups))
        readers += [CacheReader(c, redis, lookups) for c in config.cache if c.redis == redis.name]
        readers += [framework_reader(f, redis, lookups) for f in config.frameworks if f.redis == redis.name]
        if readers:
            sources.append(RedisSource(redis, readers, lookups))
    if config.business is not None:
        # Imported only when used: psycopg and libpq add several MiB to a Redis-only exporter.
        from opsloop.exporter.sources.postgres_sql import PostgresSource

        sources.append(PostgresSource(config.business))
    return sources
