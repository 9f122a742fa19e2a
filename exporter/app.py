"""The exporter's aiohttp application: /metrics, health endpoints and the landing page."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator

from aiohttp import web
from opsloop.exporter.collector import Collector
from opsloop.exporter.config import ExporterConfig, RedisConfig
from opsloop.exporter.exposition import render
from opsloop.exporter.sources import build_sources
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder

from opsloop.buildinfo import BuildInfoCollector
from opsloop.landing import landing_page

CONFIG = web.AppKey("config", ExporterConfig)
TELEMETRY_PATH = web.AppKey("telemetry_path", str)
COLLECTOR = web.AppKey("collector", Collector)
PROCESS = web.AppKey("process", CollectorRegistry)
MIN_DEADLINE = 0.1


def scrape_deadline(request: web.Request, config: ExporterConfig) -> float:
    """Prometheus' scrape timeout minus the margin, or the configured default."""
    header = request.headers.get("X-Prometheus-Scrape-Timeout-Seconds")
    try:
        timeout = float(header) if header else config.scrape.default_timeout
    except ValueError:
        timeout = config.scrape.default_timeout
    return max(MIN_DEADLINE, timeout - config.scrape.timeout_margin)


async def metrics(request: web.Request) -> web.StreamResponse:
    app = request.app
    families = await app[COLLECTOR].collect(scrape_deadline(request, app[CONFIG]))
    # prometheus-client negotiates the format and renders the process metrics; we render the rest.
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    openmetrics = content_type.startswith("application/openmetrics-text")
    response = web.StreamResponse(headers={"Content-Type": content_type})
    response.enable_compression()  # gzip only when the client accepts it
    await response.prepare(request)
    for chunk in render(families, openmetrics):
        await response.write(chunk)
    await response.write(encoder(app[PROCESS]))
    await response.write_eof()
    return response


async def healthy(_: web.Request) -> web.Response:
    return web.Response(text="OK\n")


async def ready(request: web.Request) -> web.Response:
    # Ready once the sources are built: a down Redis or PostgreSQL is reported in metrics, not here.
    if COLLECTOR not in request.app:
        return web.Response(status=503, text="starting\n")
    return web.Response(text="OK\n")


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
    mode = redis.effective_mode(redis.url)
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


async def landing(request: web.Request) -> web.Response:
    items = "".join(f"<li>{html.escape(line)}</li>" for line in config_summary(request.app[CONFIG]))
    body = landing_page("opsloop exporter", request.app[TELEMETRY_PATH], f"<h2>Configuration</h2><ul>{items}</ul>")
    return web.Response(text=body, content_type="text/html")


async def collector_ctx(app: web.Application) -> AsyncIterator[None]:
    collector = Collector(build_sources(app[CONFIG]), app[CONFIG].scrape)
    app[COLLECTOR] = collector
    yield
    await collector.close()


def create_app(config: ExporterConfig, telemetry_path: str = "/metrics") -> web.Application:
    app = web.Application()
    app[CONFIG] = config
    app[TELEMETRY_PATH] = telemetry_path
    process = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=process)
    PlatformCollector(registry=process)
    process.register(BuildInfoCollector())
    app[PROCESS] = process
    app.cleanup_ctx.append(collector_ctx)
    app.router.add_get(telemetry_path, metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_get("/", landing)
    return app
