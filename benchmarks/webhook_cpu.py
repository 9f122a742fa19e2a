"""CPU per routed webhook on PostgreSQL: the receiver process and PostgreSQL, and the statements behind it.

Throughput on a busy machine says little; CPU time per webhook does not depend on who else runs. Each
measurement starts ``opsloop-receiver`` on an empty database of a durable PostgreSQL (fsync and
``synchronous_commit=on``, ``pg_stat_statements`` loaded), posts a bounded number of webhooks with
``wrk`` (32 connections, one alert each, the load of ``webhook_ack.py``: every alert of one Alertmanager
group, routed to a local Slack stand-in that takes a message a second), then waits (bounded) until every
delivery is done. It prints the CPU time per acknowledged webhook of the receiver (all its threads) and
of PostgreSQL (postmaster and backends), while posting and until drained, and statements, rows and
execution time per webhook; ``--top N`` lists the N statements that took the most time.

    python benchmarks/webhook_cpu.py [--webhooks 4000] [--rounds 3] [--routes slack none] [--top 12]

To compare two versions, run it from each checkout in turn, several rounds each (the spread shows the
noise). Needs ``wrk`` (Debian package ``wrk``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_seconds, family_cpu_seconds
from opsloop.testsupport.servers import LOOPBACK, PostgresServer
from opsloop.testsupport.sinks import SlackSink
from postgres_side import fresh_database, postmaster_pid
from webhook_ack import receiver_argv, start, stop, wrk

STATEMENTS = (
    "SELECT calls, total_exec_time, rows, regexp_replace(left(query, 100), '\\s+', ' ', 'g') FROM pg_stat_statements "
    "s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '{database}' ORDER BY total_exec_time DESC"
)


def with_statements(server: PostgresServer) -> None:
    """Restart ``server`` with ``pg_stat_statements`` loaded (it counts every statement of every database)."""
    server.psql("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'", database="postgres")
    server.stop()
    server.start()
    server.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", database="postgres")


def measure(
    n: int, routes: str, args: argparse.Namespace, server: PostgresServer, slack: SlackSink, work: Path
) -> None:
    database = f"cpu{n}_{routes}"
    argv, port = receiver_argv(fresh_database(server, database), routes, slack.url(), work)
    url = f"http://{LOOPBACK}:{port}"
    proc = start(argv, url, work / "servers.log", 0)
    pending = "-"
    try:
        postgres = postmaster_pid(server)
        server.psql("SELECT pg_stat_statements_reset()", database="postgres")
        before = (cpu_seconds(proc.pid), family_cpu_seconds(postgres))
        load = argparse.Namespace(threads=2, connections=args.connections, priority=0)
        result = wrk(url, load, args.seconds, args.webhooks, work)
        posted = (cpu_seconds(proc.pid), family_cpu_seconds(postgres))
        deadline = time.monotonic() + (args.drain if routes == "slack" else 0)
        while time.monotonic() < deadline:  # until every delivery is done (bounded)
            time.sleep(1)
            pending = server.psql("SELECT count(*) FROM jobs WHERE state = 'pending'", database=database).strip()
            if pending == "0":
                break
        drained = (cpu_seconds(proc.pid), family_cpu_seconds(postgres))
        rows = [line.split("|", 3) for line in server.psql(STATEMENTS.format(database=database),
                                                            database="postgres").strip().splitlines()]  # fmt: skip
    finally:
        stop(proc)
    count = max(result["requests"], 1)
    calls, total, touched = (sum(float(r[i]) for r in rows) / count for i in range(3))
    cpu = [f"{(after[i] - before[i]) / count * 1e6:9.0f}" for after in (posted, drained) for i in (0, 1)]
    print(f"{n:5d} {routes:6} {result['requests']:8d} {' '.join(cpu)} {pending:>7} {calls:6.2f} {touched:6.2f} "
          f"{total * 1e3:7.0f}")  # fmt: skip
    for c, t, r, query in rows[: args.top]:
        per = (float(c) / count, float(r) / count, float(t) / count * 1e3)
        print(f"      {per[0]:8.3f} calls {per[1]:7.2f} rows {per[2]:6.1f} us  {query}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--webhooks", type=int, default=4000, help="webhooks per measurement (default 4000)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0, help="posting stops after this long at the latest")
    parser.add_argument("--drain", type=float, default=60.0, help="seconds to wait for the deliveries at most")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--routes", choices=("slack", "none"), nargs="+", default=["slack"])
    parser.add_argument("--top", type=int, default=0, help="statements listed per measurement")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("webhook_cpu.py needs wrk, the HTTP load generator: apt-get install wrk", file=sys.stderr)
        return 2
    print("CPU us per acknowledged webhook: while posting, and until every delivery is done; per webhook: "
          "statements, rows, statement execution us")  # fmt: skip
    print(f"{'round':>5} {'routes':6} {'webhooks':>8} {'receiver':>9} {'postgres':>9} {'receiver':>9} "
          f"{'postgres':>9} {'pending':>7} {'stmts':>6} {'rows':>6} {'exec':>7}")  # fmt: skip
    server = PostgresServer(durable=True).start()
    try:
        with_statements(server)
        with tempfile.TemporaryDirectory(prefix="opsloop-bench-") as tmp, SlackSink() as slack:
            for n in range(args.rounds):
                for routes in args.routes:
                    measure(n, routes, args, server, slack, Path(tmp))
    finally:
        server.cleanup()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
