"""Console page benchmark: the incidents page and the stats page over 10,000 stored incidents.

Fills a SQLite store with ``--incidents`` alerts received over the last 30 days (through the store's own
``ingest``), gives each plan run an outcome and an action, starts ``opsloop-receiver`` on loopback, signs
in, and times sequential GETs of each page against the admin API's JSON for the same data (the
reference: the same store operation without HTML), printing median and p90 and the ratio. Bounded in
count (``--requests``) and time (``--max-seconds``).

    python benchmarks/console_pages.py [--incidents 10000] [--requests 30]
"""

from __future__ import annotations

import argparse
import asyncio
import http.cookiejar
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml
from opsloop.receiver.domain import Alert, RoutedAlert
from opsloop.receiver.store import open_store
from opsloop.testsupport.servers import LOOPBACK, free_port, http_ok, wait_until

TOKEN, ADMIN = "bench-webhook-token", "bench-admin-token"
DAY = 86400.0
ALERTNAMES = [f"Alert{n:02d}" for n in range(20)]


def seed(db: Path, count: int, now: float) -> None:
    """``count`` incidents over 30 days, each with a plan run that recovered (70%), escalated or was skipped."""
    rng = random.Random(7)
    store = open_store(f"sqlite://{db}")

    async def ingest() -> None:
        await store.open()
        try:
            for start in range(0, count, 500):
                at = now - 30 * DAY + (start / count) * 30 * DAY
                batch = [
                    RoutedAlert(
                        Alert(
                            fingerprint=f"{n:016x}", starts_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)),
                            status="firing", labels={"alertname": rng.choice(ALERTNAMES), "svc": f"svc-{n % 40}",
                                                     "severity": rng.choice(("critical", "warning"))},
                            annotations={"summary": "benchmark"}, generator_url="http://prometheus/graph",
                        ),
                        plans=[("fix", {"svc": f"svc-{n % 40}"})],
                    )
                    for n in range(start, min(count, start + 500))
                ]  # fmt: skip
                await store.ingest(batch, "http://alertmanager", 0, at)
        finally:
            await store.close()

    asyncio.run(ingest())
    with sqlite3.connect(db) as conn:
        jobs = conn.execute("SELECT id, created_at FROM jobs WHERE kind = 'plan'").fetchall()
        updates, actions = [], []
        for job_id, created in jobs:
            state = rng.choices(("recovered", "escalated", "skipped"), (70, 20, 10))[0]
            finished = created + rng.uniform(5, 900)
            updates.append((state, finished, created + 1, finished, job_id))
            if state != "skipped":
                actions.append((job_id, "fix", 0, 0, "command", "ok" if state == "recovered" else "failed",
                                "exit 0", 0, created + 1, created + 2))  # fmt: skip
        conn.executemany(
            "UPDATE jobs SET state = ?, finished_at = ?, run_started_at = ?, updated_at = ? WHERE id = ?",
            updates,
        )
        conn.executemany(
            "INSERT INTO actions (job_id, plan, stage, position, type, state, detail, dry_run, started_at, "
            "finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            actions,
        )


def timed(opener: urllib.request.OpenerDirector, url: str, headers: dict[str, str], n: int, deadline: float,
          expect: str) -> list[float]:  # fmt: skip
    times = []
    for _ in range(n):
        if time.monotonic() > deadline:
            break
        started = time.perf_counter()
        with opener.open(urllib.request.Request(url, headers=headers), timeout=30) as resp:
            body = resp.read().decode()
        times.append(time.perf_counter() - started)
        assert expect in body, f"{url}: {expect!r} not in the answer"
    return times


def sign_in(opener: urllib.request.OpenerDirector, base: str) -> None:
    page = opener.open(base + "/ui/login").read().decode()
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token
    form = urllib.parse.urlencode({"csrf": token.group(1), "name": "bench", "secret": ADMIN}).encode()
    opener.open(base + "/ui/login", data=form).read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsloop-bench-") as tmp:
        work = Path(tmp)
        (work / "admin").write_text(ADMIN)
        config = {
            "auth": {"bearer_token": TOKEN}, "admin": {"token_file": str(work / "admin")},
            "store": f"sqlite://{work / 'receiver.db'}",
            "recovery": [{"name": "fix", "match": {"alertname": "never"},
                          "actions": [{"type": "command", "argv": ["true"]}]}],
        }  # fmt: skip
        (work / "receiver.yml").write_text(yaml.safe_dump(config))
        began = time.monotonic()
        seed(work / "receiver.db", args.incidents, time.time())
        print(f"seeded {args.incidents} incidents in {time.monotonic() - began:.1f}s")
        port = free_port()
        base = f"http://{LOOPBACK}:{port}"
        with open(work / "receiver.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "opsloop.receiver", "--config", str(work / "receiver.yml"),
                 "--web.listen-address", f"{LOOPBACK}:{port}", "--log.level", "warning"],
                stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip
        try:
            wait_until(lambda: http_ok(base + "/-/ready"), 30, "the receiver")
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
            sign_in(opener, base)
            api = {"Authorization": f"Bearer {ADMIN}"}
            deadline = time.monotonic() + args.max_seconds
            cases = [
                ("incidents page (50 of 10,000)", base + "/ui/incidents", {}, "incidents; page 1 of",
                 base + "/api/incidents?limit=50", 0.200),
                ("incidents page, alertname filter", base + "/ui/incidents?alertname=Alert03", {}, "Alert03",
                 base + "/api/incidents?limit=50&alertname=Alert03", 0.200),
                ("stats page, 30 days", base + "/ui/stats?range=30d", {}, "total-repaired",
                 base + "/api/stats?range=30d", 0.500),
            ]  # fmt: skip
            print(f"{'page':36} {'median':>9} {'p90':>9} {'JSON API median':>16} {'ratio':>6} {'target':>8}")
            for name, url, headers, expect, reference, target in cases:
                timed(opener, url, headers, 3, deadline, expect)  # warm up
                page = timed(opener, url, headers, args.requests, deadline, expect)
                ref = timed(opener, reference, api, args.requests, deadline, "{")
                med, p90 = statistics.median(page), statistics.quantiles(page, n=10)[8]
                verdict = "met" if p90 < target else "MISSED"
                print(f"{name:36} {med * 1000:7.1f}ms {p90 * 1000:7.1f}ms {statistics.median(ref) * 1000:14.1f}ms "
                      f"{med / statistics.median(ref):6.2f} {target * 1000:5.0f}ms {verdict}")  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
