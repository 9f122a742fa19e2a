"""Webhook acknowledgement benchmark: opsloop-receiver (durable store) against a bare aiohttp handler.

Each server runs as its own process on loopback and gets the same load from ``wrk`` (a C load
generator, so the client shares no interpreter with the servers): a fixed number of connections
posting Alertmanager webhooks of one alert each, every alert with labels and a fingerprint of its own
(a Lua script varies them per request, so every webhook is a new incident and new work). A round
measures the bare handler and then the receiver on each store, with every alert routed to a local Slack
stand-in (``slack``: the worker delivers while webhooks arrive) and with no routes (``none``: the
acknowledgement path alone). It prints webhooks per second, p50/p99 acknowledgement latency (wrk's
histogram), the server process's CPU time per acknowledged webhook (all its threads), the load average
before each measurement, the p99 of a 4 KiB write and ``fdatasync`` sampled every 10 ms on the store's
file system during the measurement (what a durable commit cannot beat), and the throughput ratio to the
bare handler of the same round. Every
measurement is bounded in time (``--seconds``) and in count (``--max-requests``); each receiver starts
on an empty store.

    python benchmarks/webhook_ack.py [--connections 32] [--seconds 10] [--rounds 3]
                                     [--store sqlite postgresql] [--routes slack none]

PostgreSQL runs with its durable defaults (fsync and ``synchronous_commit=on``): an acknowledgement
costs a WAL flush, as in production, and is measured as such. Needs ``wrk`` (Debian package ``wrk``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml
from aiohttp import web
from opsloop.testsupport.servers import LOOPBACK, PostgresServer, ServerError, free_port, http_ok, wait_until
from opsloop.testsupport.sinks import SlackSink

TOKEN = "benchmark-token"
SLOT = re.compile("@(FINGERPRINT|INSTANCE)@")

LUA = """
-- One Alertmanager webhook per request, its alert with labels and a fingerprint of its own; each thread
-- stops after its share of the request budget; done() prints the summary as one JSON line.
local pieces, slots = {%(pieces)s}, {%(slots)s}
local budget, thread_count, nonce = %(budget)d, %(threads)d, "%(nonce)s"
local headers = {["Authorization"] = "Bearer %(token)s", ["Content-Type"] = "application/json"}
local created = 0
function setup(thread)
  thread:set("id", created)
  created = created + 1
end
function init(args)
  sent, answered, limit = 0, 0, math.max(1, math.floor(budget / thread_count))
end
function request()
  sent = sent + 1
  local values = {FINGERPRINT = string.format("%%s%%02x%%08x", nonce, id, sent), INSTANCE = "host" .. (sent %% 50)}
  local parts = {}
  for i, slot in ipairs(slots) do
    parts[#parts + 1] = pieces[i]
    parts[#parts + 1] = values[slot]
  end
  parts[#parts + 1] = pieces[#pieces]
  return wrk.format("POST", "/alerts", headers, table.concat(parts))
end
function response(status, headers, body)
  answered = answered + 1
  if answered >= limit then wrk.thread:stop() end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "seconds": %%.6f, "non_2xx": %%d, "socket_errors": %%d, "p50_ms": %%.3f, "p99_ms": %%.3f}\\n',
    summary.requests, summary.duration / 1e6, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def webhook_template() -> str:
    """An Alertmanager webhook (version 4) with ``@FINGERPRINT@`` and ``@INSTANCE@`` where Lua fills in."""
    alert = {
        "status": "firing",
        "labels": {"alertname": "Bench", "instance": "@INSTANCE@", "series": "@FINGERPRINT@", "severity": "warning"},
        "annotations": {"summary": "benchmark"}, "startsAt": "2030-01-01T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus/graph", "fingerprint": "@FINGERPRINT@",
    }  # fmt: skip
    return json.dumps({
        "version": "4", "status": "firing", "receiver": "opsloop", "groupKey": '{}:{alertname="Bench"}',
        "truncatedAlerts": 0, "groupLabels": {"alertname": "Bench"}, "commonLabels": {"alertname": "Bench"},
        "commonAnnotations": {}, "externalURL": "http://am", "alerts": [alert],
    })  # fmt: skip


def lua_script(budget: int, threads: int) -> str:
    parts = SLOT.split(webhook_template())  # text, slot name, text, slot name, ..., text
    pieces, slots = parts[0::2], parts[1::2]
    return LUA % {
        "pieces": ", ".join(f"[==[{piece}]==]" for piece in pieces), "slots": ", ".join(f'"{s}"' for s in slots),
        "budget": budget, "threads": threads, "nonce": secrets.token_hex(3), "token": TOKEN,
    }  # fmt: skip


def serve_bare(port: int) -> None:
    """The reference: an aiohttp handler that reads the body and answers 200, nothing else."""

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": "accepted"})

    app = web.Application()
    app.router.add_post("/alerts", handle)
    app.router.add_get("/-/ready", lambda request: web.Response(text="OK"))  # type: ignore[arg-type,return-value]
    web.run_app(app, host=LOOPBACK, port=port, access_log=None, print=None)


def wrk(url: str, args: argparse.Namespace, seconds: float, budget: int, work: Path) -> dict[str, float]:
    script = work / "post.lua"
    script.write_text(lua_script(budget, args.threads))
    argv = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds:g}s", "--timeout", "10s",
            "-s", str(script), url + "/alerts"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=True)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    summary["rate"] = summary["requests"] / summary["seconds"]
    return summary


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, all its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:  # never leave a server behind
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(15)


class FlushSampler(threading.Thread):
    """Times a 4 KiB write and ``fdatasync`` every 10 ms in ``work`` until stopped: the disk's own flush
    latency meanwhile, so a commit tail can be told apart from a disk that was slow at that moment."""

    def __init__(self, work: Path) -> None:
        super().__init__(daemon=True)
        self.path = work / "flush-sample"
        self.samples: list[float] = []
        self.halt = threading.Event()

    def run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            while not self.halt.wait(0.01) and len(self.samples) < 100_000:
                os.pwrite(fd, b"x" * 4096, 0)
                started = time.perf_counter()
                os.fdatasync(fd)
                self.samples.append((time.perf_counter() - started) * 1000)
        finally:
            os.close(fd)
            self.path.unlink()

    def p99(self) -> float:
        self.halt.set()
        self.join()
        ordered = sorted(self.samples) or [0.0]
        return ordered[min(len(ordered) - 1, len(ordered) * 99 // 100)]


def measure(name: str, argv: list[str], port: int, args: argparse.Namespace, work: Path) -> dict[str, float]:
    url = f"http://{LOOPBACK}:{port}"
    proc = start(argv, url, work / "servers.log")
    try:
        wrk(url, args, 2, 2000, work)  # warm up: connections, caches, the first pages of the store
        load = os.getloadavg()[0]
        before = cpu_seconds(proc.pid)
        flushes = FlushSampler(work)
        flushes.start()
        try:
            result = wrk(url, args, args.seconds, args.max_requests, work)
        finally:
            flush_p99 = flushes.p99()
        cpu = cpu_seconds(proc.pid) - before
    finally:
        stop(proc)
    return {  # type: ignore[return-value]
        **result, "name": name, "load": load, "cpu_us": cpu / max(result["requests"], 1) * 1e6, "fsync_p99": flush_p99,
    }  # fmt: skip


def fresh_database(server: PostgresServer, name: str) -> str:
    server.psql(f"CREATE DATABASE {name}", database="postgres")
    return server.dsn.rsplit("/", 1)[0] + f"/{name}"


def receiver_argv(store_url: str, routes: str, slack_url: str, work: Path) -> tuple[list[str], int]:
    config = {
        "auth": {"bearer_token": TOKEN}, "store": store_url,
        "notifiers": {"slack": [{"name": "oncall", "webhook_url": slack_url}]},
        "routes": [{"match": {}, "notify": ["slack/oncall"]}] if routes == "slack" else [],
    }  # fmt: skip
    path = work / "receiver.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    return [sys.executable, "-m", "opsloop.receiver", "--config", str(path),
            "--web.listen-address", f"{LOOPBACK}:{port}", "--log.level", "warning"], port  # fmt: skip


def one_round(
    n: int, args: argparse.Namespace, postgres: PostgresServer | None, slack_url: str, work: Path
) -> list[dict[str, float]]:
    """The bare handler, then the receiver on each store and routing, each on an empty store."""
    bare_port = free_port()
    bare = [sys.executable, __file__, "--serve-bare", str(bare_port)]
    results = [measure("bare aiohttp handler", bare, bare_port, args, work)]
    for store, routes in itertools.product(args.store, args.routes):
        if store == "postgresql" and postgres is not None:
            url = fresh_database(postgres, f"round{n}_{routes}")
        else:
            url = f"sqlite://{work / f'round{n}-{routes}.db'}"
        argv, port = receiver_argv(url, routes, slack_url, work)
        results.append(measure(f"receiver {store}, routes {routes}", argv, port, args, work))
    return results


def report(args: argparse.Namespace, rounds: list[list[dict[str, float]]]) -> None:
    print(f"wrk, {args.connections} connections, {args.seconds:g} s per measurement, one alert per webhook, loopback")
    print(f"{'round':>5} {'server':34} {'load':>5} {'webhooks/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'CPU us':>7} "
          f"{'fsync99':>8} {'errors':>7} {'/ bare':>7}")  # fmt: skip
    for n, results in enumerate(rounds, 1):
        bare = results[0]["rate"]
        for r in results:
            errors = int(r["non_2xx"] + r["socket_errors"])
            print(f"{n:5d} {r['name']:34} {r['load']:5.2f} {r['rate']:11.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} "
                  f"{r['cpu_us']:7.0f} {r['fsync_p99']:8.2f} {errors:7d} {r['rate'] / bare:7.2f}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measurement")
    parser.add_argument("--max-requests", type=int, default=200_000, help="requests per measurement at most")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--routes", choices=("slack", "none"), nargs="+", default=["slack", "none"])
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return 0
    if shutil.which("wrk") is None:
        print("webhook_ack.py needs wrk, the HTTP load generator: apt-get install wrk", file=sys.stderr)
        return 2
    rounds: list[list[dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="opsloop-bench-") as tmp, SlackSink() as slack:
        postgres = PostgresServer(durable=True).start() if "postgresql" in args.store else None
        try:
            for n in range(args.rounds):
                rounds.append(one_round(n, args, postgres, slack.url(), Path(tmp)))
        finally:
            if postgres:
                postgres.cleanup()
    report(args, rounds)
    return 0 if all(r["non_2xx"] + r["socket_errors"] == 0 for results in rounds for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
