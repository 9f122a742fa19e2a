"""Parse what the exporter serves, so tests assert exact values."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from opsloop.exporter.httpserver import HttpServer
from prometheus_client.parser import text_string_to_metric_families

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


class ExporterClient:
    """The exporter's server on a free loopback port and a client session for it."""

    def __init__(self, server: HttpServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session
        self.base = f"http://127.0.0.1:{server.ports[0]}"

    async def get(self, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        resp = await self.session.get(self.base + path, **kwargs)
        await resp.read()  # as aiohttp's TestClient: the whole body read, the response left open to read again
        return resp


def parse_metrics(text: str) -> Series:
    """Every sample as {(name, labels): value}, so tests can assert exact values."""
    out: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(series: Series, metric: str, /, **labels: str) -> float | None:
    return series.get((metric, frozenset(labels.items())))


def names(series: Series) -> set[str]:
    return {name for name, _ in series}


async def scrape(client: ExporterClient, timeout: float | None = None) -> Series:
    headers = {"X-Prometheus-Scrape-Timeout-Seconds": str(timeout)} if timeout else {}
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200
    return parse_metrics(await resp.text())


async def timed_scrape(client: ExporterClient) -> tuple[float, Series, float]:
    """A scrape with the wall clock read just before and just after it.

    The exporter reads the clock once per scrape, somewhere in between, so an age computed from a
    timestamp the test wrote itself must lie in ``[before - stamp, after - stamp]``: an exact bracket
    as wide as the scrape, no tolerance to guess.
    """
    before = time.time()
    series = await scrape(client)
    return before, series, time.time()


def assert_age(age: float | None, stamp: float, before: float, after: float) -> None:
    """``age`` is what a clock read between ``before`` and ``after`` gives for an item written at ``stamp``."""
    assert age is not None
    low, high = max(0.0, before - stamp), max(0.0, after - stamp)
    assert low - 1e-6 <= age <= high + 1e-6, f"age {age} outside [{low}, {high}]"


async def scrape_until(client: ExporterClient, check: Callable[[Series], bool], timeout: float = 10.0) -> Series:
    """Scrape until ``check`` holds: for work the exporter finishes in the background (a key rescan)."""
    deadline = time.monotonic() + timeout
    while True:
        series = await scrape(client)
        if check(series) or time.monotonic() > deadline:
            return series
        await asyncio.sleep(0.02)
