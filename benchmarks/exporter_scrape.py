"""Scrape time of opsloop-exporter against prometheus-redis-exporter --check-keys, on the same Redis.

For each key count (10, 100, 1,000, 10,000 list keys) both exporters scrape the same keys; the script
prints the median of several scrapes for each, their ratio, and opsloop-exporter's peak RSS.
Everything runs on loopback, and every loop is bounded in count.

    .venv/bin/python benchmarks/exporter_scrape.py [--counts 10,100,1000,10000] [--scrapes 7]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import redis
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from opsloop.testsupport.servers import ManagedProcess, RedisServer, free_port, http_ok  # noqa: E402


def fill(url: str, count: int) -> None:
    r = redis.Redis.from_url(url)
    r.flushdb()
    pipe = r.pipeline(transaction=False)
    for n in range(count):
        pipe.lpush(f"bench:{n}", f'{{"enqueued_at": {time.time()}}}', "x", "y")
    pipe.execute()


def scrape_times(url: str, scrapes: int, expect: str) -> list[float]:
    times = []
    for _ in range(scrapes):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as resp:
            body = resp.read()
        times.append(time.perf_counter() - started)
        if expect.encode() not in body:
            raise RuntimeError(f"scrape of {url} lacks {expect}")
    return times


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):  # peak resident set size
            return int(line.split()[1]) / 1024
    return float("nan")


def start(name: str, argv: list[str], workdir: Path, port: int) -> ManagedProcess:
    proc = ManagedProcess(name, workdir)
    proc.spawn(argv)
    proc.wait_ready(lambda: http_ok(f"http://127.0.0.1:{port}/metrics"), timeout=60)
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="10,100,1000,10000")
    parser.add_argument("--scrapes", type=int, default=7)
    args = parser.parse_args()
    reference = shutil.which("prometheus-redis-exporter")
    if reference is None:
        sys.exit("prometheus-redis-exporter is not installed (Debian package prometheus-redis-exporter)")
    workdir = Path(tempfile.mkdtemp(prefix="opsloop-bench-"))
    rows = []
    with RedisServer() as server:
        ours_port, ref_port = free_port(), free_port()
        config = workdir / "exporter.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "scrape": {"default_timeout": "60s"},
                    "redis": [{"name": "main", "url": server.url, "max_keys_per_pattern": 20000}],
                    "queues": [{"redis": "main", "pattern": "bench:*", "oldest_age": {"field": "enqueued_at"}}],
                }
            )
        )
        ours = start("opsloop-exporter", [sys.executable, "-m", "opsloop.exporter", "--config", str(config),
                                          "--web.listen-address", f"127.0.0.1:{ours_port}", "--log.level",
                                          "warning"], workdir, ours_port)  # fmt: skip
        ref = start("redis_exporter", [reference, "-redis.addr", server.url, "-check-keys", "bench:*",
                                       "-web.listen-address", f"127.0.0.1:{ref_port}"], workdir, ref_port)  # fmt: skip
        try:
            for count in (int(c) for c in args.counts.split(",")):
                fill(server.url, count)
                ours.stop()  # a fresh process per size: discovery starts from scratch, RSS peak is per size
                ours.spawn(ours.proc.args)  # type: ignore[union-attr]
                ours.wait_ready(lambda: http_ok(f"http://127.0.0.1:{ours_port}/-/ready"), timeout=60)
                last = f'queue="bench:{count - 1}"'
                first = scrape_times(f"http://127.0.0.1:{ours_port}/metrics", 1, last)[0]  # discovery + TYPE
                ours_t = statistics.median(scrape_times(f"http://127.0.0.1:{ours_port}/metrics", args.scrapes, last))
                ref_t = statistics.median(
                    scrape_times(f"http://127.0.0.1:{ref_port}/metrics", args.scrapes, f'key="bench:{count - 1}"')
                )
                rss = rss_mib(ours.proc.pid)  # type: ignore[union-attr]
                rows.append((count, ours_t, first, ref_t, ref_t / ours_t, rss))
                print(f"{count:>6} keys: opsloop {ours_t * 1000:8.1f} ms (first {first * 1000:7.1f} ms)  "
                      f"redis_exporter {ref_t * 1000:8.1f} ms  ratio {ref_t / ours_t:5.1f}x  "
                      f"opsloop peak RSS {rss:5.1f} MiB", flush=True)  # fmt: skip
        finally:
            ours.stop()
            ref.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    print("\n| keys | opsloop median | opsloop first scrape | redis_exporter median | speed-up | opsloop peak RSS |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for count, ours_t, first, ref_t, ratio, rss in rows:
        print(f"| {count:,} | {ours_t * 1000:.1f} ms | {first * 1000:.1f} ms | {ref_t * 1000:.1f} ms | "
              f"{ratio:.1f}x | {rss:.1f} MiB |")  # fmt: skip


if __name__ == "__main__":
    main()
