"""Parse what the exporter serves, so tests assert exact values."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


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


async def scrape(client: TestClient, timeout: float | None = None) -> Series:
    headers = {"X-Prometheus-Scrape-Timeout-Seconds": str(timeout)} if timeout else {}
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200
    return parse_metrics(await resp.text())
