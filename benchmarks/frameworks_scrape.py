"""Scrape time of opsloop-exporter's ``frameworks: [{kind: rq}]`` against rq-exporter, on the same Redis.

Fills one redis-server through RQ's own API with 50 queues, 10,000 queued jobs, 1,000 failed jobs, 100
scheduled jobs and 100 registered workers (each serving two queues), then scrapes rq-exporter (PyPI
``rq-exporter``, run from its own virtualenv because it needs ``rq<3``) and opsloop-exporter, checks
that every value both publish agrees (queued, failed, started, scheduled, workers per queue), and prints
the median scrape time of each and their ratio. Everything runs on loopback; every loop is bounded.

    .venv/bin/python benchmarks/frameworks_scrape.py [--scrapes 7] [--rq-exporter-venv .bench/rq-exporter]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import redis
import yaml
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue, Worker
from rq.job import JobStatus
from rq.registry import FailedJobRegistry

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from opsloop.testsupport.servers import ManagedProcess, RedisServer, free_port, http_ok  # noqa: E402

RQ_EXPORTER = "rq-exporter==3.1.0"
QUEUES, QUEUED, FAILED, SCHEDULED, WORKERS = 50, 10_000, 1_000, 100, 100


def rq_exporter(venv: Path) -> Path:
    """The rq-exporter console script, installed into its own virtualenv on first use."""
    script = venv / "bin" / "rq-exporter"
    if not script.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", RQ_EXPORTER], check=True)
    return script


def fill(url: str) -> None:
    """The benchmark's RQ data, written through RQ's API (one pipeline per queue for the queued jobs)."""
    r = redis.Redis.from_url(url)
    r.flushdb()
    queues = [Queue(f"queue-{n:02d}", connection=r) for n in range(QUEUES)]
    for n, queue in enumerate(queues):
        with r.pipeline() as pipe:
            for i in range(QUEUED // QUEUES):
                queue.enqueue("bench.job", n, i, pipeline=pipe)
            pipe.execute()
    for i in range(FAILED):
        queue = queues[i % QUEUES]
        job = queue.create_job("bench.job", args=(i,))
        job.set_status(JobStatus.FAILED)
        job.ended_at = job.created_at
        FailedJobRegistry(queue=queue).add(job, exc_string="RuntimeError: benchmark")
    for i in range(SCHEDULED):
        queues[i % QUEUES].enqueue_in(timedelta(hours=1), "bench.job", i)
    for i in range(WORKERS):
        serves = [queues[i % QUEUES], queues[(i + 1) % QUEUES]]
        Worker(serves, name=f"bench-worker-{i}", connection=r).register_birth()


def scrape(url: str, scrapes: int) -> tuple[list[float], str]:
    times, body = [], b""
    for _ in range(scrapes):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as resp:
            body = resp.read()
        times.append(time.perf_counter() - started)
    return times, body.decode()


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def compare(ours: str, theirs: str) -> int:
    """Check every value both exporters publish; return how many were compared."""
    mine: dict[tuple[str, str], float] = {}
    for name, labels, value in samples(ours):
        if labels.get("framework") == "rq":
            mine[(name, labels["queue"])] = value
    pairs = {"queued": "opsloop_queue_length", "failed": "opsloop_dlq_length", "started": "opsloop_queue_in_progress",
             "scheduled": "opsloop_queue_scheduled"}  # fmt: skip
    workers: dict[str, float] = defaultdict(float)
    compared = 0
    for name, labels, value in samples(theirs):
        if name == "rq_jobs" and labels["status"] in pairs:
            expected = mine[(pairs[labels["status"]], labels["queue"])]
            assert expected == value, (labels, expected, value)
            compared += 1
        elif name == "rq_workers":
            for queue in labels["queues"].split(","):
                workers[queue] += value
    for queue, count in workers.items():
        assert mine[("opsloop_queue_workers", queue)] == count, (queue, count)
        compared += 1
    return compared


def start(name: str, argv: list[str], workdir: Path, port: int) -> ManagedProcess:
    proc = ManagedProcess(name, workdir)
    proc.spawn(argv)
    proc.wait_ready(lambda: http_ok(f"http://127.0.0.1:{port}/metrics"), timeout=60)
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=7)
    parser.add_argument("--rq-exporter-venv", type=Path, default=ROOT / ".bench" / "rq-exporter")
    args = parser.parse_args()
    reference = rq_exporter(args.rq_exporter_venv)
    workdir = Path(tempfile.mkdtemp(prefix="opsloop-bench-"))
    with RedisServer() as server:
        fill(server.url)
        ours_port, ref_port = free_port(), free_port()
        config = workdir / "exporter.yml"
        config.write_text(yaml.safe_dump({
            "scrape": {"default_timeout": "60s"},
            "redis": [{"name": "main", "url": server.url}],
            "frameworks": [{"redis": "main", "kind": "rq"}],
        }))  # fmt: skip
        ours = start("opsloop-exporter", [sys.executable, "-m", "opsloop.exporter", "--config", str(config),
                                          "--web.listen-address", f"127.0.0.1:{ours_port}", "--log.level",
                                          "warning"], workdir, ours_port)  # fmt: skip
        ref = start("rq-exporter", [str(reference), "--redis-url", server.url, "--host", "127.0.0.1",
                                    "--port", str(ref_port)], workdir, ref_port)  # fmt: skip
        try:
            ours_times, ours_text = scrape(f"http://127.0.0.1:{ours_port}/metrics", args.scrapes)
            ref_times, ref_text = scrape(f"http://127.0.0.1:{ref_port}/metrics", args.scrapes)
        finally:
            ours.stop()
            ref.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    compared = compare(ours_text, ref_text)
    ours_t, ref_t = statistics.median(ours_times), statistics.median(ref_times)
    print(f"{QUEUES} queues, {QUEUED:,} queued, {FAILED:,} failed, {SCHEDULED} scheduled, {WORKERS} workers: "
          f"{compared} values agree")  # fmt: skip
    print(f"opsloop-exporter median {ours_t * 1000:.1f} ms, rq-exporter median {ref_t * 1000:.1f} ms, "
          f"ratio {ref_t / ours_t:.1f}x (opsloop also publishes ages, overdue and unreadable records)")  # fmt: skip


if __name__ == "__main__":
    main()
