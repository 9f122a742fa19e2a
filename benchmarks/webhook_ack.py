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
bare handler of the same round; then the server's cores, everybody else's cores, the time the
server's threads waited for a CPU, the cores the hypervisor took and the longest time the machine ran
nothing at all (``machine``), and for PostgreSQL what the server did meanwhile
(``postgres_side``). Every measurement is bounded in time (``--seconds``) and in count
(``--max-requests``); each receiver starts on an empty store. ``--replicas N`` runs N receivers on each
PostgreSQL database, as replicas of one deployment, each loaded by a ``wrk`` of its own with an equal
share of the connections (their rates and CPU summed, their highest p50 and p99 shown). ``--processes N``
runs each PostgreSQL receiver as N processes on one address (``opsloop-receiver --processes N``), loaded
by one ``wrk``; its CPU is all its processes'.

    python benchmarks/webhook_ack.py [--connections 32] [--seconds 10] [--rounds 3]
                                     [--store sqlite postgresql] [--routes slack none]
                                     [--priority -10] [--recycle-wal 256] [--replicas 1] [--processes 1]
                                     [--no-bare]

PostgreSQL runs with its durable defaults (fsync and ``synchronous_commit=on``): an acknowledgement
costs a WAL flush, as in production, and is measured as such; it starts with WAL segments ready for
reuse, as a server in steady state (``--recycle-wal``). The measured processes run at a raised autogroup
priority (``--priority``). Needs ``wrk`` (Debian package ``wrk``).
"""

from __future__ import annotations

import argparse
import functools
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
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from aiohttp import web
from machine import (
    FlushSampler,
    StallSampler,
    children_cpu_seconds,
    family,
    family_cpu_seconds,
    machine_busy_seconds,
    prioritise,
    runqueue_wait_seconds,
    steal_seconds,
)
from opsloop.testsupport.servers import LOOPBACK, PostgresServer, ServerError, free_port, http_ok, wait_until
from opsloop.testsupport.sinks import SlackSink
from postgres_side import ServerActivity, fresh_database, postmaster_pid, recycle_wal

TOKEN = "benchmark-token"
BARE = "bare aiohttp handler"
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
    '{"requests": %%d, "seconds": %%.6f, "non_2xx": %%d, "socket_errors": %%d, "connect": %%d, "read": %%d, '
    .. '"write": %%d, "timeout": %%d, "p50_ms": %%.3f, "p99_ms": %%.3f}\\n',
    summary.requests, summary.duration / 1e6, e.status, e.connect + e.read + e.write + e.timeout,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


ERROR_KINDS = ("connect", "read", "write", "timeout")
"""wrk's socket errors by kind: "read" is a connection the server closed, "timeout" a request unanswered
for ``--timeout`` (10 s)."""


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
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True) as proc:
        prioritise(proc.pid, args.priority)
        try:
            out, _ = proc.communicate(timeout=seconds + 30)
        except subprocess.TimeoutExpired:  # never leave the load generator behind
            proc.kill()
            raise
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, argv, out)
    summary = json.loads(out.strip().splitlines()[-1])
    summary["rate"] = summary["requests"] / summary["seconds"]
    return summary


def start(argv: list[str], url: str, log: Path, priority: int) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, start_new_session=True)
    prioritise(proc.pid, priority)
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


def measure(
    name: str,
    servers: list[tuple[list[str], int]],
    args: argparse.Namespace,
    work: Path,
    activity: Callable[[], ServerActivity] | None = None,
) -> dict[str, float]:
    """One measurement of ``servers`` (replicas of one store, or one server), each loaded by a ``wrk`` of
    its own with an equal share of the connections; rates and CPU are summed, p50 and p99 are the highest
    of the servers' (a latency quantile of them all lies between theirs)."""
    loads = [argparse.Namespace(**{**vars(args), "connections": args.connections // len(servers),
                                   "threads": max(1, args.threads // len(servers))}) for _ in servers]  # fmt: skip
    works = [work / f"server{index}" for index in range(len(servers))]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for (argv, port), own in zip(servers, works, strict=True):
            own.mkdir(exist_ok=True)
            procs.append(start(argv, f"http://{LOOPBACK}:{port}", work / "servers.log", args.priority))
        urls = [f"http://{LOOPBACK}:{port}" for _, port in servers]
        # Warm up: connections, caches, the first pages of the store.
        load_all(urls, loads, 2, 2000 // len(servers), works)
        load = os.getloadavg()[0]
        server = activity() if activity else None
        started = counters(procs)
        flushes, stalls = FlushSampler(work), StallSampler()
        flushes.start()
        try:
            each = load_all(urls, loads, args.seconds, args.max_requests // len(servers), works)
        finally:
            flush_p99, stall = flushes.p99(), stalls.longest_ms()
        ended = counters(procs)
        done = server.delta() if server else {}
    finally:
        for proc in procs:
            stop(proc)
    result = {key: sum(r[key] for r in each) for key in ("requests", "rate", "non_2xx", "socket_errors", *ERROR_KINDS)}
    result |= {key: max(r[key] for r in each) for key in ("seconds", "p50_ms", "p99_ms")}
    elapsed, busy, cpu, load_generator, script, waited, stolen = (b - a for a, b in zip(started, ended, strict=True))
    others = busy - cpu - load_generator - script - done.get("postgres_cpu", 0.0)
    return {  # type: ignore[return-value]
        **result, **done, "name": name, "load": load, "cpu_us": cpu / max(result["requests"], 1) * 1e6,
        "fsync_p99": flush_p99, "cores": cpu / elapsed, "other_cores": max(others, 0.0) / elapsed,
        "runqueue": waited / elapsed, "stall_ms": stall,
        "steal": stolen / elapsed,
    }  # fmt: skip


def counters(procs: list[subprocess.Popen[bytes]]) -> list[float]:
    """What a measurement subtracts: wall time, the machine's busy time, the servers' CPU (with the
    processes of a receiver run with ``--processes``), the load generator's (children's) CPU, this
    script's, the servers' run-queue waits and the stolen time."""
    return [time.monotonic(), machine_busy_seconds(), sum(family_cpu_seconds(proc.pid) for proc in procs),
            children_cpu_seconds(), time.process_time(),
            sum(runqueue_wait_seconds(pid) for proc in procs for pid in family(proc.pid)),
            steal_seconds()]  # fmt: skip


def load_all(
    urls: list[str], loads: list[argparse.Namespace], seconds: float, budget: int, works: list[Path]
) -> list[dict[str, float]]:
    """``wrk`` against every URL at once, each with its own load and script directory."""
    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        runs = [
            pool.submit(wrk, url, load, seconds, budget, own) for url, load, own in zip(urls, loads, works, strict=True)
        ]
        return [run.result() for run in runs]


def receiver_argv(store_url: str, routes: str, slack_url: str, work: Path, processes: int = 1) -> tuple[list[str], int]:
    config = {
        "auth": {"bearer_token": TOKEN}, "store": store_url,
        "notifiers": {"slack": [{"name": "oncall", "webhook_url": slack_url}]},
        "routes": [{"match": {}, "notify": ["slack/oncall"]}] if routes == "slack" else [],
    }  # fmt: skip
    work.mkdir(exist_ok=True)
    path = work / "receiver.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    return [sys.executable, "-m", "opsloop.receiver", "--config", str(path),
            "--web.listen-address", f"{LOOPBACK}:{port}", "--log.level", "warning", "--processes", str(processes)
            ], port  # fmt: skip


def one_round(
    n: int, args: argparse.Namespace, postgres: PostgresServer | None, slack_url: str, work: Path
) -> list[dict[str, float]]:
    """The bare handler, then the receiver on each store and routing, each on an empty store."""
    bare_port = free_port()
    bare = [sys.executable, __file__, "--serve-bare", str(bare_port)]
    results = [measure(BARE, [(bare, bare_port)], args, work)] if args.bare else []
    for store, routes in itertools.product(args.store, args.routes):
        activity = None
        replicas = processes = 1
        if store == "postgresql" and postgres is not None:
            database = f"round{n}_{routes}"
            url = fresh_database(postgres, database)
            activity = functools.partial(ServerActivity, postgres, database)
            replicas, processes = args.replicas, args.processes
        else:
            url = f"sqlite://{work / f'round{n}-{routes}.db'}"
        servers = [receiver_argv(url, routes, slack_url, work / f"replica{index}", processes)
                   for index in range(replicas)]  # fmt: skip
        shape = (f" x{replicas}" if replicas > 1 else "") + (f" p{processes}" if processes > 1 else "")
        name = f"receiver {store}{shape}, routes {routes}"
        results.append(measure(name, servers, args, work, activity))
    return results


def report(args: argparse.Namespace, rounds: list[list[dict[str, float]]]) -> None:
    print(f"wrk, {args.connections} connections, {args.seconds:g} s per measurement, one alert per webhook, loopback")
    print(f"{'round':>5} {'server':34} {'load':>5} {'webhooks/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'CPU us':>7} "
          f"{'fsync99':>8} {'errors':>7} {'/ bare':>7} {'cores':>6} {'others':>6} {'queued':>6} {'stolen':>6} "
          f"{'stall ms':>8}")  # fmt: skip
    for n, results in enumerate(rounds, 1):
        bare = results[0]["rate"] if results[0]["name"] == BARE else 0.0
        for r in results:
            errors = int(r["non_2xx"] + r["socket_errors"])
            ratio = f"{r['rate'] / bare:7.2f}" if bare else f"{'-':>7}"
            print(f"{n:5d} {r['name']:34} {r['load']:5.2f} {r['rate']:11.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} "
                  f"{r['cpu_us']:7.0f} {r['fsync_p99']:8.2f} {errors:7d} {ratio} {r['cores']:6.2f} "
                  f"{r['other_cores']:6.2f} {r['runqueue']:6.2f} {r['steal']:6.2f} {r['stall_ms']:8.1f}")  # fmt: skip
    for n, results in enumerate(rounds, 1):
        for r in results:
            if r["non_2xx"] + r["socket_errors"]:
                kinds = ", ".join(f"{r[kind]:.0f} {kind}" for kind in ERROR_KINDS)
                print(f"{n:5d} {r['name']:34} errors: {r['non_2xx']:.0f} answers other than 2xx; sockets: {kinds}")
    if any("checkpoints" in r for results in rounds for r in results):
        print("PostgreSQL during each measurement:")
    for n, results in enumerate(rounds, 1):
        for r in results:
            if "checkpoints" in r:
                per_webhook = r["wal_bytes"] / max(r["requests"], 1)
                print(f"{n:5d} {r['name']:34} checkpoints {r['checkpoints']:.0f}, WAL {r['wal_bytes'] / 2**20:.1f} MiB "
                      f"({per_webhook:.0f} B per webhook, {r['wal_fpi']:.0f} full-page images), WAL buffers full "
                      f"{r['wal_buffers_full']:.0f}, WAL files added {r['wal_files']:.0f}, autovacuum/analyze "
                      f"{r['autovacuums']:.0f}, CPU "
                      f"{r['postgres_cpu'] / max(r['requests'], 1) * 1e6:.0f} us per webhook")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measurement")
    parser.add_argument("--max-requests", type=int, default=200_000, help="requests per measurement at most")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--routes", choices=("slack", "none"), nargs="+", default=["slack", "none"])
    parser.add_argument("--priority", type=int, default=-10, help="autogroup nice of the measured processes "
                        "(default -10; 0 leaves it alone)")  # fmt: skip
    parser.add_argument("--recycle-wal", type=int, default=256, metavar="MIB", help="WAL that PostgreSQL keeps "
                        "ready for reuse, written before the first round (default 256; 0: none, as new)")  # fmt: skip
    parser.add_argument("--replicas", type=int, default=1, help="receivers sharing each PostgreSQL database, the "
                        "connections split among them (default 1; SQLite is always one)")  # fmt: skip
    parser.add_argument("--processes", type=int, default=1, help="each PostgreSQL receiver run with --processes "
                        "N: N processes on one address (default 1)")  # fmt: skip
    parser.add_argument("--no-bare", dest="bare", action="store_false", help="skip the bare handler (no ratio)")
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return 0
    if args.replicas < 1 or args.connections % args.replicas:
        parser.error("--replicas must be at least 1 and divide --connections evenly")
    if shutil.which("wrk") is None:
        print("webhook_ack.py needs wrk, the HTTP load generator: apt-get install wrk", file=sys.stderr)
        return 2
    rounds: list[list[dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="opsloop-bench-") as tmp, SlackSink() as slack:
        postgres = PostgresServer(durable=True).start() if "postgresql" in args.store else None
        try:
            if postgres:  # a session of its own
                prioritise(postmaster_pid(postgres), args.priority)
                if args.recycle_wal:
                    recycle_wal(postgres, args.recycle_wal)
            for n in range(args.rounds):
                rounds.append(one_round(n, args, postgres, slack.url(), Path(tmp)))
        finally:
            report(args, rounds)  # what was measured, even when a later round or the clean-up fails
            if postgres:
                postgres.cleanup()
    return 0 if all(r["non_2xx"] + r["socket_errors"] == 0 for results in rounds for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
