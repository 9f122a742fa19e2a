"""What every framework reader shares: the script call and the parsing of its rows.

A framework is a key layout, not a new metric family: each one maps onto the queue and DLQ contract
(``opsloop_queue_*``, ``opsloop_dlq_*``) with a ``framework`` label, and adds only what the contract
lacks (in progress, overdue, scheduled), all declared in ``opsloop.metric_contract``. Each framework
module supplies a Lua script that reads every one of its queues in one call, following ids to job
records only for the oldest item of each queue.
The call rides on the Redis source's shared pipeline. The scripts derive key names inside Redis, so they
are not Redis Cluster-safe (docs/frameworks.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opsloop.exporter.sources.base import Sample
from opsloop.exporter.sources.redis_discovery import KeyDiscovery
from opsloop.exporter.sources.redis_queues import parse_timestamp
from opsloop.exporter.sources.redis_source import KeyLookups, Parser
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from opsloop.metric_contract import (
    FRAMEWORK_DLQ_LENGTH,
    FRAMEWORK_DLQ_OLDEST_AGE,
    FRAMEWORK_QUEUE_LENGTH,
    FRAMEWORK_QUEUE_OLDEST_AGE,
    FRAMEWORK_QUEUE_WORKERS,
    QUEUE_IN_PROGRESS,
    QUEUE_IN_PROGRESS_OVERDUE,
    QUEUE_SCHEDULED,
    QUEUE_UNREADABLE_RECORDS,
)

if TYPE_CHECKING:
    from opsloop.exporter.config import FrameworkConfig, RedisConfig

log = logging.getLogger(__name__)

COMMON_LUA = (Path(__file__).parent / "common.lua").read_text()
ROW_FIELDS = ("queue", "dlq", "length", "oldest", "in_progress", "overdue", "scheduled", "dlq_length", "dlq_oldest",
              "workers", "unreadable", "error")  # fmt: skip
"""The fields of a script's row, in the order common.lua answers them."""
QUEUE_FIELDS = {
    "in_progress": QUEUE_IN_PROGRESS,
    "overdue": QUEUE_IN_PROGRESS_OVERDUE,
    "scheduled": QUEUE_SCHEDULED,
    "workers": FRAMEWORK_QUEUE_WORKERS,
}


class FrameworkError(Exception):
    """Redis refused a framework key (a key of the wrong type, say): the source reports the read failed."""


@dataclass(frozen=True)
class Layout:
    """How one framework keeps its queues: its script, its arguments and the series it can publish."""

    kind: str
    script: str
    publishes: frozenset[str]
    """Row fields the framework keeps in Redis; the others are left out, not published as 0."""
    args: Callable[[FrameworkConfig, float], list[str]]
    """The script's ARGV before the queue names, given the entry and the time now."""
    discovery_pattern: Callable[[FrameworkConfig], str] | None = None
    """For frameworks without a queue registry: a SCAN pattern whose keys name the queues."""
    queue_from_key: Callable[[FrameworkConfig, str], str | None] | None = None
    """The queue a discovered key belongs to (None for a key that names none)."""


def script(lua_file: str) -> str:
    """A framework's script with the shared helpers (``common.lua``) in front of it."""
    return COMMON_LUA + (Path(__file__).parent / lua_file).read_text()


class FrameworkReader:
    """One ``frameworks`` entry: every queue of the framework on one Redis, in one script call."""

    def __init__(self, entry: FrameworkConfig, redis: RedisConfig, layout: Layout, lookups: KeyLookups) -> None:
        self.entry = entry
        self.layout = layout
        self.lookups = lookups
        self.redis_name = redis.name
        self._names = list(entry.queues)
        self.discovery: KeyDiscovery | None = None
        if not entry.queues and layout.discovery_pattern is not None:
            self.discovery = KeyDiscovery(redis, layout.discovery_pattern(entry))

    def discoveries(self) -> list[KeyDiscovery]:
        return [self.discovery] if self.discovery is not None else []

    async def prepare(self, client: Redis) -> None:
        if self.discovery is not None and self.layout.queue_from_key is not None:
            keys = await self.discovery.current(client)
            names = {self.layout.queue_from_key(self.entry, key) for key in keys}
            self._names = sorted(n for n in names if n)

    def plan(self, pipe: Pipeline) -> Parser:
        pipe.eval(self.layout.script, 0, *self.layout.args(self.entry, time.time()), *self._names)
        return self._parse

    def _parse(self, replies: Sequence[object]) -> Iterator[Sample]:
        (reply,) = replies
        if isinstance(reply, Exception):
            raise reply
        hits, misses, rows = reply  # type: ignore[misc]
        self.lookups.add(int(hits), int(misses))
        now = time.time()
        for row in rows:
            yield from self._queue_samples(row, now)
        if self.discovery is not None:
            yield from self.discovery.samples()

    def _queue_samples(self, row: list[str], now: float) -> Iterator[Sample]:
        fields = dict(zip(ROW_FIELDS, row, strict=True))
        kind, publishes = self.layout.kind, self.layout.publishes
        if fields["error"]:
            raise FrameworkError(f"{kind} queue {fields['queue']!r}: {fields['error']}")
        labels = (self.redis_name, fields["queue"], kind)
        unreadable = int(fields["unreadable"] or 0)
        if fields["queue"]:  # a nameless row only carries records that belong to no queue
            yield Sample(FRAMEWORK_QUEUE_LENGTH, labels, float(fields["length"]))
            if "oldest" in publishes:
                age, bad = _age(fields["oldest"], fields["length"], now)
                unreadable += bad
                if age is not None:
                    yield Sample(FRAMEWORK_QUEUE_OLDEST_AGE, labels, age)
            for field, metric in QUEUE_FIELDS.items():
                if field in publishes and fields[field] != "":
                    yield Sample(metric, labels, float(fields[field]))
            if "dlq" in publishes:
                dlq_labels = (self.redis_name, fields["dlq"], fields["queue"], kind)
                yield Sample(FRAMEWORK_DLQ_LENGTH, dlq_labels, float(fields["dlq_length"]))
                age, bad = _age(fields["dlq_oldest"], fields["dlq_length"], now)
                unreadable += bad
                if age is not None:
                    yield Sample(FRAMEWORK_DLQ_OLDEST_AGE, dlq_labels, age)
        if "unreadable" in publishes:
            if unreadable:
                log.debug("unreadable job records", extra={"framework": kind, "queue": fields["queue"]})
            yield Sample(QUEUE_UNREADABLE_RECORDS, labels, float(unreadable))


def _age(stamp: str, length: str, now: float) -> tuple[float | None, int]:
    """Age from a record's time stamp and whether the stamp was unreadable; 0 for an empty queue."""
    if length == "0":
        return 0.0, 0
    if not stamp:
        return None, 0  # the script counted the missing record already
    when = parse_timestamp(stamp)
    if when is None:
        return None, 1
    return max(0.0, now - when), 0
