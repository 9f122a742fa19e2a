"""Task frameworks (RQ, Dramatiq, Celery, arq) read in their own key layouts; see docs/frameworks.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsloop.exporter.sources.frameworks.arq import ARQ
from opsloop.exporter.sources.frameworks.base import FrameworkReader, Layout
from opsloop.exporter.sources.frameworks.celery import CELERY
from opsloop.exporter.sources.frameworks.dramatiq import DRAMATIQ
from opsloop.exporter.sources.frameworks.rq import RQ
from opsloop.exporter.sources.redis_source import KeyLookups

if TYPE_CHECKING:
    from opsloop.exporter.config import FrameworkConfig, RedisConfig

LAYOUTS: dict[str, Layout] = {layout.kind: layout for layout in (RQ, DRAMATIQ, CELERY, ARQ)}


def framework_reader(entry: FrameworkConfig, redis: RedisConfig, lookups: KeyLookups) -> FrameworkReader:
    return FrameworkReader(entry, redis, LAYOUTS[entry.kind], lookups)
