"""Webhook acknowledgement benchmark: opsloop-receiver (durable store) against a bare aiohttp handler.

Both servers run as separate processes on loopback; one client process posts the same number of
Alertmanager webhooks (one alert each, unique fingerprints) to each with a fixed concurrency, and
prints webhooks per second, p50/p99 acknowledgement latency and the receiver's ratio to the bare
handler. Every run is bounded in count (``--requests``) and time (``--max-seconds``).

    python benchmarks/webhook_ack.py [--requests 5000] [--concurrency 32] [--store sqlite postgresql]

PostgreSQL runs with its durable defaults (fsync and ``synchronous_commit=on``): an acknowledgement
costs a WAL flush, as in production, and is measured as such.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web
from opsloop.testsupport.servers import LOOPBACK, PostgresServer, ServerError, free_port, http_ok, wait_until
from opsloop.testsupport.sinks import SlackSink

TOKEN = "benchmark-token"


def payload(n: int) -> bytes:
    alert = {
        "status": "firing", "labels": {"alertname": "Bench", "instance": f"host{n % 50}", "n": str(n)},
        "annotations": {"summary": "benchmark"}, "startsAt": "2030-01-01T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus/graph", "fingerprint": f"{n:016x}",
    }  # fmt: skip
    return json.dumps({
        "version": "4", "status": "firing", "receiver": "opsloop", "groupKey": "{}:{}", "truncatedAlerts": 0,
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am", "alerts": [alert],
    }).encode()  # fmt: skip


def serve_bare(port: int) -> None:
    """The reference: an aiohttp handler that reads the body and answers 200, nothing else."""

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": "accepted"})

    app = web.Application()
    app.router.add_post("/alerts", handle)
    app.router.add_get("/-/ready", lambda request: web.Response(text="OK"))  # type: ignore[arg-type,return-value]
    web.run_app(app, host=LOOPBACK, port=port, access_log=None, print=None)


async def load(url: str, requests: int, concurrency: int, deadline: float) -> tuple[list[float], float, int]:
    """POST ``requests`` webhooks; returns latencies (seconds), wall time and the count of non-200s."""
    latencies: list[float] = []
    errors = 0
    bodies = iter(range(requests))
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            nonlocal errors
            for n in bodies:
                if time.monotonic() > deadline:
                    return
                started = time.perf_counter()
                async with session.post(url, data=payload(n), headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return latencies, time.perf_counter() - began, errors


def start(argv: list[str], url: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, start_new_session=True)
    try:
        wait_until(lambda: http_ok(url + "/-/ready"), 30, " ".join(argv[:3]))
    except ServerError:
        stop(proc)  # never leave a server behind
        raise
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(15)


def run_one(name: str, argv: list[str], port: int, args: argparse.Namespace, log: Path) -> dict[str, float]:
    url = f"http://{LOOPBACK}:{port}"
    proc = start(argv, url, log)
    try:
        asyncio.run(load(url + "/alerts", min(200, args.requests), args.concurrency, time.monotonic() + 10))  # warm up
        latencies, wall, errors = asyncio.run(
            load(url + "/alerts", args.requests, args.concurrency, time.monotonic() + args.max_seconds)
        )
    finally:
        stop(proc)
    quantiles = statistics.quantiles(latencies, n=100)
    return {"name": name, "done": len(latencies), "errors": errors, "rate": len(latencies) / wall,
            "p50_ms": quantiles[49] * 1000, "p99_ms": quantiles[98] * 1000}  # fmt: skip


def run_receiver(store: str, url: str, slack_url: str, args: argparse.Namespace, work: Path) -> dict[str, float]:
    config = {
        "auth": {"bearer_token": TOKEN}, "store": url,
        "notifiers": {"slack": [{"name": "oncall", "webhook_url": slack_url}]},
        "routes": [{"match": {}, "notify": ["slack/oncall"]}],
    }  # fmt: skip
    (work / f"receiver-{store}.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    argv = [sys.executable, "-m", "opsloop.receiver", "--config", str(work / f"receiver-{store}.yml"),
            "--web.listen-address", f"{LOOPBACK}:{port}", "--log.level", "warning"]  # fmt: skip
    return run_one(f"opsloop-receiver ({store})", argv, port, args, work / f"receiver-{store}.log")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return 0
    with tempfile.TemporaryDirectory(prefix="opsloop-bench-") as tmp, SlackSink() as slack:
        work = Path(tmp)
        postgres = PostgresServer(durable=True).start() if "postgresql" in args.store else None
        try:
            bare_port = free_port()
            results = [
                run_one("bare aiohttp handler", [sys.executable, __file__, "--serve-bare", str(bare_port)],
                        bare_port, args, work / "bare.log"),
            ]  # fmt: skip
            for store in args.store:
                url = postgres.dsn if store == "postgresql" and postgres else f"sqlite://{work / 'receiver.db'}"
                results.append(run_receiver(store, url, slack.url(), args, work))
        finally:
            if postgres:
                postgres.cleanup()
    print(f"{args.requests} webhooks, concurrency {args.concurrency}, one alert each, loopback")
    print(f"{'server':34} {'webhooks/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for r in results:
        print(f"{r['name']:34} {r['rate']:11.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {int(r['errors']):7d}")
    for r in results[1:]:
        print(f"{r['name']} / bare throughput: {r['rate'] / results[0]['rate']:.2f}")
    return 0 if all(r["errors"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
