"""What every source shares: samples, the Source protocol and the circuit breaker.

Metric declarations live in ``opsloop.metric_contract``; ``Metric`` is re-exported here for sources.
"""

from __future__ import annotations

import random
import time
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from opsloop.metric_contract import Metric


class Sample(NamedTuple):
    """One series value; a tuple because sources create tens of thousands per scrape."""

    metric: Metric
    labels: tuple[str, ...]
    value: float


@dataclass(slots=True)
class Column:
    """Many series of one metric that differ only in their last label value, stored as two arrays.

    100,000 queue keys as ``Sample`` tuples cost about 200 bytes each and a dict entry more once
    grouped; a column costs 16 bytes per series (a reference to the key name and a double), and is
    rendered straight from the arrays. ``names`` holds no duplicates; every value is a float.
    """

    metric: Metric
    prefix: tuple[str, ...]
    """The values of every label but the last, shared by all the column's series."""
    names: list[str]
    """The last label's value of each series."""
    values: array[float]
    decimals: int | None = None
    """Digits after the point a value is rendered with; None: the shortest text that reads back exactly."""
    _lookup: frozenset[str] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        """Whether a series has ``name``; a set is built on the first question (only overlapping sources ask)."""
        if self._lookup is None:
            self._lookup = frozenset(self.names)
        return name in self._lookup

    def items(self) -> Iterator[tuple[tuple[str, ...], float]]:
        prefix = self.prefix
        return (((*prefix, name), value) for name, value in zip(self.names, self.values, strict=True))


Series = Sample | Column
"""What a source publishes: single samples, and columns where it has many series of one metric."""


class PartialFailure(Exception):
    """A source failed but still has samples worth serving (for example cached query results)."""

    def __init__(self, samples: list[Series], message: str) -> None:
        super().__init__(message)
        self.samples = samples


class Source(Protocol):
    """One thing the exporter reads. ``name`` becomes the ``source`` label of the self metrics."""

    name: str

    async def read(self) -> Iterable[Series]:
        """Read everything this source publishes; raise on failure (the collector reports it).

        The result may be lazy: the collector consumes it within the read's deadline, and an error
        raised while iterating counts as the read failing. Raise PartialFailure to report the source
        down while still publishing some samples.
        """
        ...

    async def close(self) -> None: ...


class CircuitBreaker:
    """Stops calling a dead source on every scrape.

    After ``failures`` consecutive errors the breaker opens for an exponentially growing, jittered
    pause (1 s, 2 s, 4 s, ... up to ``max_backoff``); while open the source is reported down at once
    instead of costing a timeout. The first call after the pause is the trial: success closes it.
    ``cap`` (the collector passes half the time between scrapes) keeps every pause shorter than the
    scrape interval, so the first scrape after the source answers again reports it up.
    """

    def __init__(self, failures: int = 3, max_backoff: float = 30.0) -> None:
        self.threshold = failures
        self.max_backoff = max_backoff
        self.consecutive_failures = 0
        self.open_until = 0.0

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self.open_until

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self.open_until = 0.0

    def record_failure(self, cap: float | None = None) -> None:
        self.consecutive_failures += 1
        excess = self.consecutive_failures - self.threshold
        if excess >= 0:
            longest = self.max_backoff if cap is None else min(self.max_backoff, cap)
            pause = min(longest, 2.0**excess) * random.uniform(0.5, 1.0)
            self.open_until = time.monotonic() + pause
