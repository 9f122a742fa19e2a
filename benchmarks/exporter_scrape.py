"""Scrape time of opsloop-exporter against prometheus-redis-exporter --check-keys, on the same Redis.

For each key count (10 ... 100,000 list keys) both exporters scrape the same keys, on a standalone
redis-server and on a three-primary Redis Cluster (``--topologies``); the script prints the median of
several scrapes for each, their ratio, the growth from the previous count, and opsloop-exporter's
resident size when started but not yet scraped (idle) and its peak. Everything runs on loopback, and
every loop is bounded in count.

    .venv/bin/python benchmarks/exporter_scrape.py [--counts 10,100,1000,10000,100000] [--scrapes 7]
        [--topologies standalone,cluster] [--gzip]
    .venv/bin/python benchmarks/exporter_scrape.py --import-costs

``--import-costs`` prints instead what each module the exporter loads adds to the resident size of a
fresh interpreter, in the order the exporter loads them (and, for comparison, what it no longer loads).
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import redis
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from opsloop.testsupport.redis_topologies import RedisClusterNodes  # noqa: E402
from opsloop.testsupport.servers import ManagedProcess, RedisServer, free_port, http_ok  # noqa: E402


def fill(client: redis.Redis | redis.RedisCluster, count: int) -> None:
    """``count`` list keys ``bench:0..``; keys of a previous, smaller count stay and are extended."""
    for start in range(0, count, 10_000):
        pipe = client.pipeline(transaction=False)
        for n in range(start, min(count, start + 10_000)):
            pipe.delete(f"bench:{n}")
            pipe.lpush(f"bench:{n}", f'{{"enqueued_at": {time.time()}}}', "x", "y")
        pipe.execute()


def scrape_times(url: str, scrapes: int, expect: str, gzipped: bool = False) -> list[float]:
    """Each scrape's time; ``gzipped`` asks for a gzip-compressed answer, as Prometheus does."""
    times = []
    headers = {"Accept-Encoding": "gzip"} if gzipped else {}
    for _ in range(scrapes):
        started = time.perf_counter()
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as resp:
            body = resp.read()
        times.append(time.perf_counter() - started)
        if resp.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if expect.encode() not in body:
            raise RuntimeError(f"scrape of {url} lacks {expect}")
    return times


def rss_mib(pid: int, field: str = "VmHWM") -> float:
    """``VmHWM`` (peak resident set size) or ``VmRSS`` (resident now) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start(name: str, argv: list[str], workdir: Path, port: int) -> ManagedProcess:
    proc = ManagedProcess(name, workdir)
    proc.spawn(argv)
    proc.wait_ready(lambda: http_ok(f"http://127.0.0.1:{port}/metrics"), timeout=60)
    return proc


def run(topology: str, counts: list[int], scrapes: int, reference: str, workdir: Path, gzipped: bool) -> list[tuple]:
    """Both exporters against one Redis of the topology; one row per key count."""
    rows = []
    with RedisClusterNodes() if topology == "cluster" else RedisServer() as server:
        cluster = topology == "cluster"
        url = server.url
        client = server.client() if cluster else redis.Redis.from_url(url)
        ours_port, ref_port = free_port(), free_port()
        config = workdir / f"exporter-{topology}.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "scrape": {"default_timeout": "120s"},
                    "redis": [{"name": "main", "url": url}],  # the default key cap
                    "queues": [{"redis": "main", "pattern": "bench:*", "oldest_age": {"field": "enqueued_at"}}],
                }
            )
        )
        ours = start("opsloop-exporter", [sys.executable, "-m", "opsloop.exporter", "--config", str(config),
                                          "--web.listen-address", f"127.0.0.1:{ours_port}", "--log.level",
                                          "warning"], workdir, ours_port)  # fmt: skip
        ref_addr = server.seed_urls[0] if cluster else url
        ref = start("redis_exporter", [reference, "-redis.addr", ref_addr, "-check-keys", "bench:*",
                                       *(["-is-cluster"] if cluster else []),
                                       "-web.listen-address", f"127.0.0.1:{ref_port}"], workdir, ref_port)  # fmt: skip
        try:
            previous = None
            for count in counts:
                fill(client, count)
                ours.stop()  # a fresh process per size: discovery starts from scratch, RSS peak is per size
                ours.spawn(ours.proc.args)  # type: ignore[union-attr]
                ours.wait_ready(lambda: http_ok(f"http://127.0.0.1:{ours_port}/-/ready"), timeout=60)
                time.sleep(1)  # started and answering, not yet scraped: its idle size
                idle = rss_mib(ours.proc.pid, "VmRSS")  # type: ignore[union-attr]
                last = f'queue="bench:{count - 1}"'
                first = scrape_times(f"http://127.0.0.1:{ours_port}/metrics", 1, last, gzipped)[0]  # discovery + TYPE
                ours_t = statistics.median(
                    scrape_times(f"http://127.0.0.1:{ours_port}/metrics", scrapes, last, gzipped)
                )
                # redis_exporter -is-cluster SCANs only the node it is given: on a cluster it reports about a
                # third of the keys, so only its answering is checked there (its time covers that third).
                ref_expect = "redis_key_size" if cluster else f'key="bench:{count - 1}"'
                ref_t = statistics.median(
                    scrape_times(f"http://127.0.0.1:{ref_port}/metrics", scrapes, ref_expect, gzipped)
                )
                rss = rss_mib(ours.proc.pid)  # type: ignore[union-attr]
                growth = ours_t / previous[1] if previous else None
                grown = f"x{growth:4.1f} for x{count // previous[0]}" if previous else "-"
                rows.append((topology, count, ours_t, first, ref_t, ours_t / ref_t, grown, idle, rss))
                previous = (count, ours_t)
                print(f"{topology:>10} {count:>6} keys: opsloop {ours_t * 1000:8.1f} ms (first {first * 1000:7.1f} ms)"
                      f"  redis_exporter {ref_t * 1000:8.1f} ms  opsloop/redis_exporter {ours_t / ref_t:5.3f}"
                      f"  growth {grown}  opsloop RSS idle {idle:5.1f} MiB, peak {rss:5.1f}", flush=True)  # fmt: skip
        finally:
            ours.stop()
            ref.stop()
            client.close()
    return rows


IMPORT_STEPS = [
    ("hashlib", "hashlib and OpenSSL's libcrypto (ssl needs libcrypto too)"),
    ("ssl", "ssl (redis-py's asyncio client needs it at import)"),
    ("asyncio", "asyncio"),
    ("argparse, logging, opsloop.logs", "command line and logging"),
    ("yaml", "PyYAML"),
    ("pydantic_core", "pydantic-core (compiled)"),
    ("pydantic.main, pydantic.fields, pydantic.functional_validators", "pydantic (BaseModel, fields, validators)"),
    ("importlib.metadata", "importlib.metadata (pydantic's plugin loader; redis-py too)"),
    ("opsloop.configfile", "first models: pydantic's schema builder"),
    ("opsloop.exporter.config", "the exporter's config models"),
    ("redis.asyncio", "redis-py with hiredis"),
    ("opsloop.exporter.sources, opsloop.exporter.collector", "sources, collector, exposition"),
    ("prometheus_client", "prometheus-client"),
    ("opsloop.webguard", "web config checks (TLS, basic auth)"),
    ("opsloop.exporter.app, opsloop.exporter.__main__", "HTTP server and endpoints"),
]
NOT_LOADED = [("aiohttp.web", "aiohttp.web (before: the HTTP server)"), ("bcrypt", "bcrypt (only with basic auth)"),
              ("psycopg", "psycopg (only with business queries)"),
              ("opsloop.webconfig", "web config models (only with a web config file)")]  # fmt: skip
_PROBE = """
import importlib, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
print(rss())
for step in sys.argv[1:]:
    for name in step.split(", "):
        importlib.import_module(name)
    print(rss())
"""


def import_costs() -> None:
    """Resident size after each step in one fresh interpreter; the modules not loaded each in their own."""
    steps = [names for names, _ in IMPORT_STEPS]
    sizes = [float(v) for v in subprocess.check_output([sys.executable, "-c", _PROBE, *steps], text=True).split()]
    assert len(sizes) == len(steps) + 1
    print(f"| step | adds | resident |\n| --- | ---: | ---: |\n| interpreter | | {sizes[0]:.1f} MiB |")
    for (_, label), before, after in zip(IMPORT_STEPS, sizes, sizes[1:], strict=False):
        print(f"| {label} | {after - before:+.1f} MiB | {after:.1f} MiB |")
    for name, label in NOT_LOADED:
        out = subprocess.check_output([sys.executable, "-c", _PROBE, "opsloop.exporter.__main__", name], text=True)
        _, loaded, extra = (float(v) for v in out.split())
        print(f"| not loaded: {label} | {extra - loaded:+.1f} MiB | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="10,100,1000,10000,100000")
    parser.add_argument("--scrapes", type=int, default=7)
    parser.add_argument("--topologies", default="standalone,cluster")
    parser.add_argument("--import-costs", action="store_true", help="print what each import adds, then exit")
    parser.add_argument("--gzip", action="store_true", help="ask both exporters for gzip, as Prometheus does")
    args = parser.parse_args()
    if args.import_costs:
        import_costs()
        return
    reference = shutil.which("prometheus-redis-exporter")
    if reference is None:
        sys.exit("prometheus-redis-exporter is not installed (Debian package prometheus-redis-exporter)")
    counts = sorted(int(c) for c in args.counts.split(","))
    workdir = Path(tempfile.mkdtemp(prefix="opsloop-bench-"))
    try:
        rows = [
            row
            for t in args.topologies.split(",")
            for row in run(t, counts, args.scrapes, reference, workdir, args.gzip)
        ]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n| redis | keys | opsloop median | opsloop first scrape | redis_exporter median | opsloop / redis_exporter "
          "| growth | opsloop idle RSS | opsloop peak RSS |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for topology, count, ours_t, first, ref_t, ratio, grown, idle, rss in rows:
        print(f"| {topology} | {count:,} | {ours_t * 1000:.1f} ms | {first * 1000:.1f} ms | {ref_t * 1000:.1f} ms | "
              f"{ratio:.3f} | {grown} | {idle:.1f} MiB | {rss:.1f} MiB |")  # fmt: skip


if __name__ == "__main__":
    main()
