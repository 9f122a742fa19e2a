"""Run the whole opsloop loop locally and break something on purpose.

    python -m demo [--scenario dlq-storm|redis-down|slow-consumer|rq-failures|none] [--exit-after-loop]

Starts Redis, PostgreSQL, the exporter, Prometheus with the rendered rules, Alertmanager, the receiver,
local Slack and SMTP stand-ins and a workload, prints the URLs, every notification as it arrives and a
short live summary. The scenario makes an alert fire; watch the receiver repair it and the resolved
message arrive. Ctrl-C stops every process and removes the temporary data.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from opsloop.demo import rq_jobs
from opsloop.demo.stack import RQ_QUEUE, LoopStack
from opsloop.demo.workload import Workload
from opsloop.testsupport.sinks import SlackMessage
from redis import Redis as SyncRedis
from rq import Queue
from rq.registry import FailedJobRegistry, FinishedJobRegistry

from opsloop.logs import setup_logging

log = logging.getLogger("opsloop.demo")

SCENARIOS = ("dlq-storm", "redis-down", "slow-consumer", "rq-failures", "none")
SCENARIO_ALERTS = {"dlq-storm": "DLQEntriesIncreasing", "redis-down": "OpsloopSourceDown",
                   "slow-consumer": "QueueBacklogHigh", "rq-failures": "DLQEntriesIncreasing"}  # fmt: skip
SCENARIO_LABELS = {"dlq-storm": {"dlq": "dlq:emails"}, "redis-down": {"source": "redis/main"},
                   "slow-consumer": {"queue": "emails"}, "rq-failures": {"dlq": f"rq:failed:{RQ_QUEUE}"}}  # fmt: skip
"""The labels of the one alert each scenario causes: another queue's alert resolving completes nothing."""
RQ_JOBS = 25
WARM_UP = 12.0
"""Seconds before the scenario starts: Prometheus needs a baseline and must have found Alertmanager."""
SUMMARY_EVERY = 5.0
LOOP_TIMEOUT = 240.0


_SAY_LOCK = threading.Lock()


def say(text: str) -> None:
    """The demo's own output: plain lines on stdout for a person watching (logs go to stderr).

    The sinks call this from their threads: one write per line, under a lock, so lines never run together.
    """
    with _SAY_LOCK:
        sys.stdout.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")
        sys.stdout.flush()


def is_scenario_alert(scenario: str, alert: dict[str, Any]) -> bool:
    """Whether a Prometheus alert is the one ``scenario`` causes (name and identifying labels)."""
    labels = alert.get("labels", {})
    wanted = {"alertname": SCENARIO_ALERTS.get(scenario), **SCENARIO_LABELS.get(scenario, {})}
    return all(labels.get(k) == v for k, v in wanted.items())


class Demo:
    def __init__(self, scenario: str, workdir: Path) -> None:
        self.scenario = scenario
        self.started = time.monotonic()
        self.resolved_notices = 0
        """Resolved notifications naming the scenario's alert so far (any labels: Prometheus tells whose)."""
        self.ours_fired = False
        self._starting: asyncio.Future[None] | None = None
        self.loop = asyncio.get_running_loop()
        self.stack = LoopStack(workdir, on_slack=self._slack, on_mail=self._mail)
        self.workload: Workload | None = None
        self.rq_queue: Queue | None = None
        self.hook: web.AppRunner | None = None

    # -- notifications arrive on the sinks' threads ------------------------------------------
    def _slack(self, message: SlackMessage) -> None:
        say(f"Slack  <- {message.payload.get('text', '')[:150]}")
        self._maybe_done(str(message.payload))

    def _mail(self, message: EmailMessage) -> None:
        subject = " ".join(str(message["Subject"]).split())  # unfold a long header
        say(f"E-mail <- {subject}")
        self._maybe_done(subject)

    def _count_resolved(self) -> None:
        self.resolved_notices += 1

    def _maybe_done(self, text: str) -> None:
        alert = SCENARIO_ALERTS.get(self.scenario)
        if alert and alert in text and "resolved" in text.lower():
            self.loop.call_soon_threadsafe(self._count_resolved)

    # -- the restart hook the restart-redis plan calls ----------------------------------------
    async def _restart(self, request: web.Request) -> web.Response:
        if request.match_info["name"] != "main":
            return web.Response(status=404, text="unknown redis\n")
        if self.stack.redis.process.running:
            say("Hook   <- receiver asked to restart redis/main: it is already running")
            return web.Response(text="already running\n")
        say("Hook   <- receiver asked to restart redis/main: starting redis-server")
        await asyncio.to_thread(self.stack.redis.start)
        return web.Response(text="restarted\n")

    async def _start_hook(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/restart/{name}", self._restart)
        self.hook = web.AppRunner(app, access_log=None)
        await self.hook.setup()
        await web.TCPSite(self.hook, "127.0.0.1", self.stack.hook_port).start()

    # -- run ---------------------------------------------------------------------------------
    async def run(self, exit_after_loop: bool) -> int:
        say("starting Redis, PostgreSQL, exporter, receiver, Alertmanager, Prometheus (first run takes a moment)")
        # The start runs in a thread a signal cannot stop: close() waits for it before cleaning up.
        self._starting = asyncio.ensure_future(asyncio.to_thread(self.stack.start))
        await asyncio.shield(self._starting)
        await self._start_hook()
        self.workload = Workload(self.stack.redis.url, self.stack.postgres.dsn, fail_rate=0.0, seed=1)
        await self.workload.start()
        for name, url in self.stack.urls().items():
            say(f"{name:>15}: {url}")
        say(f"{'temporary data':>15}: {self.stack.workdir} (server logs are here)")
        watchers = [asyncio.create_task(self._summaries()), asyncio.create_task(self._watch_receiver())]
        try:
            if self.scenario == "none":
                await asyncio.Event().wait()  # until Ctrl-C
            await asyncio.sleep(WARM_UP)
            await self._break_something()
            try:
                await asyncio.wait_for(self._until_ours_resolved(), LOOP_TIMEOUT)
            except TimeoutError:
                say(f"the loop did not complete within {LOOP_TIMEOUT:.0f}s: see the logs in {self.stack.workdir}")
                return 1
            alert = SCENARIO_ALERTS[self.scenario]
            if self.rq_queue is not None:
                await self._rq_completed()
            say(f"loop complete: {alert} fired, the receiver handled it, it resolved ({self._elapsed()})")
            await asyncio.sleep(3)  # let the last e-mail and the plan's outcome print
            if not exit_after_loop:
                say("still running; Ctrl-C stops every process and removes the temporary data")
                await asyncio.Event().wait()
            return 0
        finally:
            for watcher in watchers:
                watcher.cancel()

    async def _break_something(self) -> None:
        assert self.workload is not None
        if self.scenario == "dlq-storm":
            say("scenario dlq-storm: 25 jobs fail into dlq:emails at once")
            await self.workload.dlq_storm(25, queue="emails")
        elif self.scenario == "redis-down":
            say("scenario redis-down: killing redis-server (kill -9)")
            self.stack.redis.kill()
        elif self.scenario == "rq-failures":
            await self._rq_failures()
        elif self.scenario == "slow-consumer":
            say("scenario slow-consumer: each email now takes 2 s and arrives every 50 ms")
            self.workload.consumer_delay = 2.0
            self.workload.produce_interval = 0.05
            await self._until_firing()
            say("backlog alert is firing: the consumer recovers (as after a fix), the queue drains")
            self.workload.consumer_delay = 0.0
            self.workload.produce_interval = 0.2

    async def _rq_failures(self) -> None:
        """Real RQ jobs fail into RQ's failed registry; the dependency recovers; the receiver requeues."""
        client = aioredis.Redis.from_url(self.stack.redis.url)
        try:
            await client.set(rq_jobs.BROKEN_FLAG, "1")
            await asyncio.to_thread(self.stack.start_rq_worker)
            say(f"scenario rq-failures: {RQ_JOBS} RQ report jobs fail (database down) into rq:failed:{RQ_QUEUE}")
            queue = Queue(RQ_QUEUE, connection=SyncRedis.from_url(self.stack.redis.url))
            for n in range(RQ_JOBS):
                queue.enqueue(rq_jobs.build_report, n)
            failed = FailedJobRegistry(queue=queue)
            for _ in range(int(LOOP_TIMEOUT * 10)):  # bounded: 0.1 s polls
                if await asyncio.to_thread(lambda: failed.count) >= RQ_JOBS:
                    break
                await asyncio.sleep(0.1)
            await client.delete(rq_jobs.BROKEN_FLAG)
            say("the reporting database is back; the failed jobs wait in RQ's failed registry for a requeue")
            self.rq_queue = queue
        finally:
            await client.aclose()

    async def _rq_completed(self) -> None:
        """Wait (bounded) until RQ itself reports every requeued job finished."""
        assert self.rq_queue is not None
        finished = FinishedJobRegistry(queue=self.rq_queue)
        for _ in range(300):
            if await asyncio.to_thread(lambda: finished.count) >= RQ_JOBS:
                break
            await asyncio.sleep(0.1)
        say(f"RQ reports {finished.count} of {RQ_JOBS} report jobs finished after the requeue "
            f"({FailedJobRegistry(queue=self.rq_queue).count} still failed)")  # fmt: skip

    async def _ours_firing(self) -> bool:
        firing = await asyncio.to_thread(self.stack.firing_alerts)
        ours = any(is_scenario_alert(self.scenario, a) for a in firing)
        self.ours_fired = self.ours_fired or ours
        return ours

    async def _until_firing(self) -> None:
        for _ in range(int(LOOP_TIMEOUT)):  # Prometheus has no push API: poll it, once a second
            if await self._ours_firing():
                return
            await asyncio.sleep(1)

    async def _until_ours_resolved(self) -> None:
        """A resolved notification counts only once the scenario's own alert fired and fires no more."""
        checked = 0
        while True:
            if not self.ours_fired:
                await self._ours_firing()
            if self.resolved_notices > checked:
                checked = self.resolved_notices  # a notice arriving during the check is checked next time
                if self.ours_fired and not await self._ours_firing():
                    return
            await asyncio.sleep(1)

    async def _watch_receiver(self) -> None:
        """Print each action the receiver records and each plan run's outcome, as they happen."""
        seen: set[tuple[str, int, str]] = set()
        while True:
            await asyncio.sleep(1)
            with contextlib.suppress(Exception):
                listing = await asyncio.to_thread(self.stack.admin_get, "/api/incidents")
                for incident in listing["incidents"]:
                    for action in incident["actions"]:
                        if ("action", action["id"], action["state"]) not in seen and action["finished_at"]:
                            seen.add(("action", action["id"], action["state"]))
                            say(f"Action -> plan {action['plan']} stage {action['stage'] + 1}: {action['type']} "
                                f"{action['state']}: {action['detail']}")  # fmt: skip
                    for run in incident["plan_runs"]:
                        if ("run", run["id"], run["state"]) not in seen and run["state"] not in ("pending", "running"):
                            seen.add(("run", run["id"], run["state"]))
                            say(f"Plan   -> {run['target']} {run['state']}: {run['result'] or run['note']}")

    async def _summaries(self) -> None:
        client = aioredis.Redis.from_url(self.stack.redis.url, decode_responses=True, socket_timeout=1)
        try:
            while True:
                await asyncio.sleep(SUMMARY_EVERY)
                with contextlib.suppress(Exception):
                    say(await self._summary(client))
        finally:
            await client.aclose()

    async def _summary(self, client: aioredis.Redis) -> str:
        try:
            emails, dlq = await asyncio.gather(client.llen("queue:emails"), client.llen("dlq:emails"))
            depth = f"queue:emails={emails} dlq:emails={dlq}"
        except Exception:
            depth = "redis unreachable"
        firing = sorted({a["labels"]["alertname"] for a in await asyncio.to_thread(self.stack.firing_alerts)})
        incidents = await asyncio.to_thread(self.stack.admin_get, "/api/incidents")
        return (f"summary {self._elapsed()}: {depth}; firing: {', '.join(firing) or 'none'}; "
                f"incidents: {len(incidents.get('incidents', incidents))}; Slack: {len(self.stack.slack.messages)}, "
                f"e-mail: {len(self.stack.smtp.messages)}")  # fmt: skip

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.started:.0f}s"

    async def close(self) -> None:
        """Stop everything started; each step runs even if one before it fails."""
        if self._starting is not None:
            await asyncio.wait([self._starting])
        for step in (self.workload.stop if self.workload else None, self.hook.cleanup if self.hook else None):
            if step is not None:
                try:
                    await step()
                except Exception as exc:
                    log.warning("stop step failed", extra={"error": str(exc)})
        await asyncio.to_thread(self.stack.cleanup)


async def amain(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="opsloop-demo-"))
    demo = Demo(args.scenario, workdir)
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    stopping = False

    def on_signal() -> None:
        # Only the first signal cancels the run: a second Ctrl-C must not interrupt the cleanup.
        nonlocal stopping
        if stopping:
            say("already stopping every process; please wait")
            return
        stopping = True
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        return await demo.run(args.exit_after_loop)
    except asyncio.CancelledError:
        say("stopping every process and removing the temporary data")
        return 0
    finally:
        stopping = True
        await demo.close()
        # Nothing is left to stop. Closing the loop would put Python's own Ctrl-C handler back, and a late
        # Ctrl-C would then end the process with a traceback: from here on, both signals are ignored.
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=SCENARIOS, default="dlq-storm")
    parser.add_argument("--exit-after-loop", action="store_true", help="stop once the loop completed (for CI)")
    parser.add_argument(
        "--log.level",
        dest="log_level",
        default="error",
        choices=("debug", "info", "warning", "error"),
        help="the demo's own logs on stderr (the servers log into the temporary directory)",
    )
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
