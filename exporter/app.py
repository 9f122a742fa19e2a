"""The exporter's HTTP endpoints: /metrics, health endpoints and the landing page."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from opsloop.exporter.collector import Collector
from opsloop.exporter.exposition import Family, render
from opsloop.exporter.httpserver import HttpServer, Request, Response
from opsloop.exporter.memory import release_free_memory
from opsloop.exporter.sources import build_sources
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder

from opsloop.buildinfo import BuildInfoCollector
from opsloop.landing import landing_page
from opsloop.redis_connect import effective_mode
from opsloop.webguard import WebGuard

if TYPE_CHECKING:
    from opsloop.exporter.config import ExporterConfig, RedisConfig

MIN_DEADLINE = 0.1


def scrape_deadline(headers: dict[str, str], config: ExporterConfig) -> float:
    """Prometheus' scrape timeout minus the margin, or the configured default."""
    header = headers.get("x-prometheus-scrape-timeout-seconds")
    try:
        timeout = float(header) if header else config.scrape.default_timeout
    except ValueError:
        timeout = config.scrape.default_timeout
    return max(MIN_DEADLINE, timeout - config.scrape.timeout_margin)


def config_summary(config: ExporterConfig) -> list[str]:
    """One line per configured item, with no URL credentials and no secrets."""
    lines = [f"redis {r.name}: {_describe_redis(r)}" for r in config.redis]
    for section, entries in (("queue", config.queues), ("dlq", config.dlqs)):
        lines += [f"{section} on {e.redis}: {e.key or e.pattern}" for e in entries]
    lines += [f"workers {w.name} on {w.redis}: {w.set or w.heartbeat_pattern}" for w in config.workers]
    lines += [f"{f.kind} on {f.redis}: {', '.join(f.queues) or 'every queue'}" for f in config.frameworks]
    lines += [f"cache on {c.redis}" + (f": {c.app_stats_pattern}" if c.app_stats_pattern else "") for c in config.cache]
    if config.business is not None:
        lines += [f"business query {q.name} every {q.interval:g}s" for q in config.business.queries]
    return lines


def _describe_redis(redis: RedisConfig) -> str:
    mode = effective_mode(redis, redis.url)
    if mode == "sentinel":
        return f"sentinel primary {redis.primary_name} via {', '.join(redis.sentinels)}"
    assert redis.url is not None  # required outside sentinel mode
    seeds = "".join(f", {_redact_url(seed)}" for seed in redis.seeds)
    return ("cluster " if mode == "cluster" else "") + _redact_url(redis.url) + seeds


def _redact_url(url: str) -> str:
    """Drop credentials (``user:password@``) and the query string (``?password=...``) from a URL."""
    scheme, sep, rest = url.partition("://")
    rest = rest.split("?", 1)[0]
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return scheme + sep + rest


class Exporter:
    """The endpoints' state: the config, the collector (built when serving starts) and process metrics."""

    def __init__(self, config: ExporterConfig, telemetry_path: str) -> None:
        self.config = config
        self.telemetry_path = telemetry_path
        self.collector: Collector | None = None
        self.process = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.process)
        PlatformCollector(registry=self.process)
        self.process.register(BuildInfoCollector())

    async def start(self) -> None:
        self.collector = Collector(build_sources(self.config), self.config.scrape)

    async def stop(self) -> None:
        if self.collector is not None:
            await self.collector.close()

    async def metrics(self, request: Request) -> Response:
        if self.collector is None:
            return Response(503, b"starting\n")
        families = await self.collector.collect(scrape_deadline(request.headers, self.config))
        # prometheus-client negotiates the format and renders the process metrics; we render the rest.
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        openmetrics = content_type.startswith("application/openmetrics-text")
        return Response(body=self._exposition(families, openmetrics, encoder), content_type=content_type, compress=True)

    def _exposition(
        self, families: list[Family], openmetrics: bool, encoder: Callable[[CollectorRegistry], bytes]
    ) -> Iterator[bytes]:
        """Our families in chunks, then the process metrics (with OpenMetrics' ``# EOF``), made as sent."""
        yield from render(families, openmetrics)
        del families  # this scrape's columns are freed before the heap is trimmed
        yield encoder(self.process)
        release_free_memory()

    async def healthy(self, _: Request) -> Response:
        return Response(body=b"OK\n")

    async def ready(self, _: Request) -> Response:
        # Ready once the sources are built: a down Redis or PostgreSQL is reported in metrics, not here.
        if self.collector is None:
            return Response(503, b"starting\n")
        return Response(body=b"OK\n")

    async def landing(self, _: Request) -> Response:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in config_summary(self.config))
        body = landing_page("opsloop exporter", self.telemetry_path, f"<h2>Configuration</h2><ul>{items}</ul>")
        return Response(body=body.encode(), content_type="text/html; charset=utf-8")


def create_app(config: ExporterConfig, telemetry_path: str = "/metrics", guard: WebGuard | None = None) -> HttpServer:
    """The exporter's server: ``setup`` builds the sources, ``listen`` serves, ``cleanup`` closes them."""
    exporter = Exporter(config, telemetry_path)
    routes = {"/-/healthy": exporter.healthy, "/-/ready": exporter.ready, "/": exporter.landing}
    routes[telemetry_path] = exporter.metrics  # last, so it wins: ``--web.telemetry-path /`` serves metrics
    return HttpServer(routes, guard or WebGuard(None), on_start=exporter.start, on_stop=exporter.stop)
