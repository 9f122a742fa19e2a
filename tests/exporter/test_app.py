"""HTTP endpoints: metrics negotiation, health, readiness and the landing page."""

from __future__ import annotations

import gzip

import aiohttp
from opsloop.exporter.app import config_summary, create_app
from opsloop.exporter.config import load_config
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from opsloop import __version__
from tests.exporter.scrapes import parse_metrics, value


async def test_metrics_text_gzip_and_openmetrics(redis_server, write_config, exporter_client):
    client = await exporter_client(write_config({"redis": [{"name": "main", "url": redis_server.url}],
                                                 "queues": [{"name": "e", "redis": "main", "key": "q"}]}))  # fmt: skip
    plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    series = parse_metrics(await plain.text())
    assert value(series, "opsloop_queue_length", redis="main", queue="e") == 0
    assert value(series, "process_resident_memory_bytes") > 0

    zipped = await client.get("/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert zipped.headers["Content-Encoding"] == "gzip"
    body = await zipped.read()
    assert b"opsloop_queue_length" in gzip.decompress(body)
    assert body[8] == 4  # the gzip header's XFL: compressed with the fastest level (RFC 1952)

    om = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["Content-Type"].startswith("application/openmetrics-text")
    families = {f.name: f for f in text_string_to_metric_families(await om.text())}
    assert families["opsloop_source_errors"].type == "counter"
    assert families["opsloop_queue_length"].samples[0].value == 0


async def test_health_ready_and_landing_page_without_secrets(redis_server, tmp_path, exporter_client):
    (tmp_path / "c.yml").write_text(
        f"redis: [{{name: main, url: '{redis_server.url.replace('redis://', 'redis://user:hunter2@')}'}},\n"
        "        {name: other, url: 'redis://127.0.0.1:1/0?password=querysecret'}]\n"
        "queues: [{name: emails, redis: main, key: 'queue:emails'}]\n"
        "business: {dsn: 'postgresql://app:s3cret@127.0.0.1:1/db', queries: []}\n"
    )
    client = await exporter_client(load_config(tmp_path / "c.yml"))
    assert (await client.get("/-/healthy")).status == 200
    assert (await client.get("/-/ready")).status == 200
    page = await client.get("/")
    text = await page.text()
    assert page.status == 200
    assert 'href="metrics"' in text
    assert "queue:emails" in text
    assert "hunter2" not in text
    assert "s3cret" not in text
    assert "querysecret" not in text
    assert "redis://***@127.0.0.1" in text


def test_the_landing_page_names_cluster_seeds_and_sentinels_without_secrets(tmp_path):
    (tmp_path / "c.yml").write_text(
        "redis:\n"
        "  - {name: c, url: 'redis+cluster://u:hunter2@127.0.0.1:7000', seeds: ['redis://:pw2@127.0.0.1:7001']}\n"
        "  - {name: s, mode: sentinel, sentinels: ['127.0.0.1:26379'], primary_name: main,\n"
        "     sentinel_password: sentinelsecret}\n"
    )
    lines = config_summary(load_config(tmp_path / "c.yml"))
    assert lines == [
        "redis c: cluster redis+cluster://***@127.0.0.1:7000, redis://***@127.0.0.1:7001",
        "redis s: sentinel primary main via 127.0.0.1:26379",
    ]


async def test_a_telemetry_path_of_slash_serves_the_metrics(write_config):
    server = create_app(write_config({}), telemetry_path="/")
    await server.setup()
    await server.listen("127.0.0.1", 0, None)
    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{server.ports[0]}/") as resp:
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert value(parse_metrics(await resp.text()), "opsloop_exporter_build_info", version=__version__) == 1
    finally:
        await server.cleanup()
