"""Scrape-time collection: every source concurrently, under one deadline, one read in flight per source.

A source that fails or misses the deadline is reported with ``opsloop_source_up`` 0 and its other
series are left out (Prometheus then marks them stale); the scrape still answers with everything
else. Concurrent scrapes share the read already in flight instead of starting another, and a source
whose circuit breaker is open costs nothing until its pause is over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opsloop.exporter.exposition import Family, group, merge
from opsloop.exporter.sources.base import CircuitBreaker, PartialFailure, Sample, Source

from opsloop import __version__
from opsloop.metric_contract import (
    BREAKER_OPEN,
    BUILD_INFO,
    SOURCE_DURATION,
    SOURCE_ERRORS,
    SOURCE_LAST_SUCCESS,
    SOURCE_UP,
)

if TYPE_CHECKING:
    from opsloop.exporter.config import ScrapeConfig

log = logging.getLogger(__name__)


@dataclass
class SourceState:
    source: Source
    breaker: CircuitBreaker
    in_flight: asyncio.Task[tuple[list[Family], bool]] | None = None
    last_duration: float | None = None
    last_success: float | None = None
    errors: int = 0


class Collector:
    def __init__(self, sources: Sequence[Source], scrape: ScrapeConfig) -> None:
        self.states = [
            SourceState(s, CircuitBreaker(scrape.breaker_failures, scrape.breaker_max_backoff)) for s in sources
        ]
        self._last_collect: float | None = None
        self._pause_cap: float | None = None

    def _note_scrape(self) -> None:
        """Half the time since the previous scrape caps breaker pauses: every scrape still tries once."""
        now = time.monotonic()
        if self._last_collect is not None:
            self._pause_cap = (now - self._last_collect) / 2
        self._last_collect = now

    async def collect(self, budget: float) -> list[Family]:
        """Read every source within ``budget`` seconds and build the metric families."""
        self._note_scrape()
        results = await asyncio.gather(*(self._read(state, budget) for state in self.states))
        health: list[Sample] = [Sample(BUILD_INFO, (__version__,), 1.0)]
        for state, (_, ok) in zip(self.states, results, strict=True):
            name = (state.source.name,)
            health.append(Sample(SOURCE_UP, name, 1.0 if ok else 0.0))
            health.append(Sample(SOURCE_ERRORS, name, float(state.errors)))
            health.append(Sample(BREAKER_OPEN, name, 1.0 if state.breaker.is_open else 0.0))
            if state.last_duration is not None:
                health.append(Sample(SOURCE_DURATION, name, state.last_duration))
            if state.last_success is not None:
                health.append(Sample(SOURCE_LAST_SUCCESS, name, state.last_success))
        return merge([families for families, _ in results] + [group(health)[0]])

    async def _read(self, state: SourceState, budget: float) -> tuple[list[Family], bool]:
        if state.in_flight is None:
            if state.breaker.is_open:
                return [], False
            state.in_flight = asyncio.create_task(self._timed_read(state, budget))
            # Forget the task once done: a finished read is not reused, and its result would stay alive.
            state.in_flight.add_done_callback(lambda _: setattr(state, "in_flight", None))
        try:
            # shield: a scrape that gives up does not cancel the read another scrape may share
            return await asyncio.wait_for(asyncio.shield(state.in_flight), budget)
        except TimeoutError:
            return [], False

    async def _timed_read(self, state: SourceState, budget: float) -> tuple[list[Family], bool]:
        """One read of the source, grouped into families here so the samples never pile up in a list."""
        source = state.source
        started = time.perf_counter()
        families: list[Family] = []
        dropped = 0
        error = ""
        answered = False  # a partial failure answered in time: no reason to stop asking
        try:
            async with asyncio.timeout(budget):
                families, dropped = group(await source.read())
        except PartialFailure as exc:
            (families, dropped), error, answered = group(exc.samples), str(exc), True
        except TimeoutError:
            error = f"no answer within {budget:.2f}s"
        except Exception as exc:  # any failure of one source is reported, never raised into the scrape
            error = str(exc) or type(exc).__name__
        state.last_duration = time.perf_counter() - started
        if dropped:
            log.warning("duplicate series dropped; check for keys configured twice", extra={"series": dropped})
        if error:
            state.errors += 1
            if not answered:
                state.breaker.record_failure(self._pause_cap)
            log.warning("source read failed", extra={"source": source.name, "error": error})
            return families, False
        state.breaker.record_success()
        state.last_success = time.time()
        return families, True

    async def close(self) -> None:
        for state in self.states:
            if state.in_flight is not None:
                state.in_flight.cancel()
        await asyncio.gather(*(s.in_flight for s in self.states if s.in_flight), return_exceptions=True)
        for state in self.states:
            await state.source.close()
