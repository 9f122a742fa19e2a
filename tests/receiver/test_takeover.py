"""Crash takeover: a dead predecessor's leases end at once, interrupted stages count as outcome unknown.

The end-to-end case kills a real receiver process with SIGKILL in the middle of a recovery action whose
command goes on and finishes, restarts it, and checks that the work is resumed within seconds (the
lease is a minute long, so only recognising the dead predecessor can explain that) and that the
finished action is not escalated as a failure.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from opsloop.receiver.domain import PLAN, RECOVERED, Alert, RoutedAlert
from opsloop.receiver.store import open_store
from opsloop.receiver.takeover import dead_predecessors, take_over
from opsloop.testsupport.servers import LOOPBACK, ManagedProcess, free_port, wait_until
from opsloop.testsupport.services import spawn_service
from opsloop.testsupport.sinks import SmtpSink

from tests.receiver.harness import ADMIN_TOKEN, TOKEN, alert, email_notifier, webhook, write_config

HOST = socket.gethostname()


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_dead_predecessors_are_this_hosts_processes_that_are_gone() -> None:
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        gone = dead_pid()
        owners = [
            f"{HOST}:{gone}:aa", f"{HOST}:{alive.pid}:bb", f"other-host:{gone}:cc", f"{HOST}:{os.getpid()}:dd",
            "not-an-owner", f"{HOST}:x:ee",
        ]  # fmt: skip
        assert dead_predecessors(owners, HOST, os.getpid()) == [f"{HOST}:{gone}:aa"]
    finally:
        alive.kill()
        alive.wait()


async def test_take_over_makes_a_dead_owners_work_due_now_as_interrupted(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path / 'r.db'}")
    await store.open()
    try:
        instance = Alert(
            fingerprint="fp", starts_at="2030-01-01T00:00:00Z", status="firing", labels={"alertname": "A"},
            annotations={}, ends_at=None, generator_url="",
        )  # fmt: skip
        await store.ingest([RoutedAlert(instance, notifiers=(), plans=[("fix", {})])], "", 0, time.time())
        dead = f"{HOST}:{dead_pid()}:x"
        (job,) = await store.claim(dead, 10, 3600, time.time())
        assert await store.claim("someone-else", 10, 60, time.time()) == []  # leased for an hour
        assert await take_over(store) == 1
        (again,) = await store.claim("successor", 10, 60, time.time())
        assert (again.id, again.kind, again.interrupted) == (job.id, PLAN, 1)
    finally:
        await store.close()


def request(port: int, method: str, path: str, body: object = None, token: str = ADMIN_TOKEN) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"http://{LOOPBACK}:{port}{path}", data=data, method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read() or b"null")


def incident(port: int, fingerprint: str) -> dict[str, Any] | None:
    found = [i for i in request(port, "GET", "/api/incidents")["incidents"] if i["fingerprint"] == fingerprint]
    return found[0] if found else None


def kill_9(process: ManagedProcess) -> None:
    """SIGKILL the receiver itself: children it started (commands) go on."""
    assert process.proc is not None
    os.kill(process.proc.pid, signal.SIGKILL)
    process.proc.wait(10)


@pytest.mark.slow
@pytest.mark.parametrize("resolves", [True, False])
def test_kill_9_mid_action_resumes_within_seconds_and_never_reports_it_failed(tmp_path: Path, resolves: bool) -> None:
    started, finished = tmp_path / "started", tmp_path / "finished"
    script = (
        "import sys, time, pathlib; pathlib.Path(sys.argv[1]).touch(); time.sleep(2); pathlib.Path(sys.argv[2]).touch()"
    )
    fix = {"type": "command", "argv": [sys.executable, "-c", script, str(started), str(finished)], "timeout": "30s"}
    plan = {
        "name": "fix", "match": {"alertname": "Broken"}, "actions": [fix], "stages": ["0s"], "verify_after": "4s",
        "escalate": ["email/oncall"], "notify_firing": False,
    }  # fmt: skip
    with SmtpSink() as mailbox:
        config = write_config(
            tmp_path, recovery=[plan], notifiers={"email": [email_notifier("oncall", mailbox.port)]},
            worker={"poll_interval": "100ms", "lease": "60s"},
        )  # fmt: skip
        port = free_port()
        first = spawn_service("receiver", config, port, tmp_path, name="first")
        second: ManagedProcess | None = None
        try:
            request(port, "POST", "/alerts", webhook(alert("k1", alertname="Broken")), token=TOKEN)
            wait_until(started.exists, 15, "the action to start")
            kill_9(first)  # the receiver only: its command goes on and finishes
            restarted = time.monotonic()
            second = spawn_service("receiver", config, port, tmp_path, name="second")

            def resumed() -> bool:
                found = incident(port, "k1")
                return bool(found) and any(a["state"] == "interrupted" for a in found["actions"])

            wait_until(resumed, 15, "the interrupted stage to be taken over")
            assert time.monotonic() - restarted < 15  # the lease is 60 s: the dead predecessor was recognised
            wait_until(finished.exists, 10, "the orphaned command to finish")
            if resolves:  # the command did its work and the alert resolves within the grace period: no page
                request(
                    port, "POST", "/alerts", webhook(alert("k1", status="resolved", alertname="Broken")), token=TOKEN
                )
                wait_until(lambda: incident(port, "k1")["plan_runs"][0]["state"] == RECOVERED, 20, "the run to end")
                assert mailbox.messages == []
                return
            # Still firing after the grace period: the escalation says what is known, not "failed".
            (mail,) = mailbox.inbox.wait_for(1, 20)
            text = mail.get_body(("plain",)).get_content()
            assert "outcome unknown: the receiver stopped while command ran, and the alert still fires 4s later" in text
            assert "command: OUTCOME UNKNOWN: the worker stopped while it ran" in text
            assert "FAILED" not in text
        finally:
            for process in (second, first):
                if process is not None:
                    process.stop()


@pytest.mark.slow
def test_kill_9_during_a_mail_burst_delivers_every_alert_soon_after_restart_twice_only_if_in_flight(
    tmp_path: Path,
) -> None:
    count, concurrency = 30, 4
    repeat = "This may repeat a message sent just before the receiver restarted."
    with SmtpSink() as mailbox:
        mailbox.accept_delay = 0.3  # a slow mail server: messages are in flight when the receiver dies
        config = write_config(
            tmp_path, notifiers={"email": [email_notifier("oncall", mailbox.port)]},
            routes=[{"match": {}, "notify": ["email/oncall"]}],
            worker={"poll_interval": "100ms", "lease": "60s", "concurrency": concurrency},
        )  # fmt: skip
        port = free_port()
        first = spawn_service("receiver", config, port, tmp_path, name="first")
        second: ManagedProcess | None = None
        try:
            burst = webhook(*(alert(f"m{n}", n=str(n)) for n in range(count)), group_key="")  # a mail per alert
            request(port, "POST", "/alerts", burst, token=TOKEN)
            mailbox.inbox.wait_for(concurrency, 15)
            kill_9(first)
            restarted = time.monotonic()
            second = spawn_service("receiver", config, port, tmp_path, name="second")

            def subjects() -> list[str]:
                return [str(m["Subject"]) for m in mailbox.messages]

            wait_until(lambda: len(set(subjects())) == count, 15, "every acknowledged alert to be mailed")
            took = time.monotonic() - restarted
            assert took < 15, took
        finally:
            for process in (second, first):
                if process is not None:
                    process.stop()
        by_subject: dict[str, list[str]] = {}
        for message in mailbox.messages:
            by_subject.setdefault(str(message["Subject"]), []).append(message.get_body(("plain",)).get_content())
        doubles = {subject: bodies for subject, bodies in by_subject.items() if len(bodies) > 1}
        assert 1 <= len(doubles) <= concurrency  # only the messages in flight at the kill (and there were some)
        assert all(len(bodies) == 2 and repeat in bodies[1] for bodies in doubles.values())
        assert all(repeat not in bodies[0] for bodies in by_subject.values())
