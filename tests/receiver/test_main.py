"""The receiver as a process: --check-config, and kill -9 during a burst of webhooks."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from opsloop.receiver.domain import SENT
from opsloop.receiver.store.sqlite import SqliteStore
from opsloop.testsupport.servers import LOOPBACK, free_port, http_ok, wait_until
from opsloop.testsupport.sinks import SmtpSink

from tests.receiver.harness import TOKEN, alert, email_notifier, webhook, write_config

BURST = 240


def receiver_argv(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "opsloop.receiver", "--config", str(config), *extra]


def test_check_config_reports_every_problem_with_its_key_path(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        routes=[{"match": {}, "notify": ["slack/nobody"]}],
        recovery=[{
            "name": "p", "match": {"alertname": "A"}, "labels": {"dlq": "^dlq:(?P<name>.+)$"},
            "actions": [{"type": "redis_set", "redis": "redis://127.0.0.1:1/0", "key": "{queue}", "value": "1",
                         "ttl": "1m"}],
            "verify": "x{q=\"{other}\"} < 1",
        }],
    )  # fmt: skip
    done = subprocess.run(receiver_argv(config, "--check-config"), capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"{config}: routes[0].notify[0]: unknown notifier 'slack/nobody' (known: [])",
        f"{config}: recovery[0].actions[0]: {{queue}} is not a label validated in labels: (or a named group of one)",
        f"{config}: recovery[0].verify: verify needs prometheus_url",
        f"{config}: recovery[0].verify: {{other}} is not a label validated in labels:",
    ]


def test_check_config_reports_five_independent_mistakes_in_one_run(tmp_path: Path) -> None:
    """An unknown key, a wrong type, an unknown notifier, an unreadable secret file and an unset secret
    variable: each is its own line with its key path, and nothing of pydantic's wording shows."""
    config = write_config(
        tmp_path,
        notifiers={
            "slack": [{"name": "oncall", "webhook_url_file": str(tmp_path / "no-such-file")}],
            "email": [{
                "name": "team", "from": "alerts@example.com", "to": ["team@example.com"],
                "smtp": {"host": LOOPBACK, "username": "alerts", "password_env": "OPSLOOP_TEST_UNSET_PASSWORD"},
            }],
        },
        routes=[{"match": {}, "notify": ["slack/oncall", "slack/nobody"], "colour": "red"}],
        worker={"concurrency": "many"},
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "OPSLOOP_TEST_UNSET_PASSWORD"}
    done = subprocess.run(receiver_argv(config, "--check-config"), capture_output=True, text=True, check=False, env=env)
    assert done.returncode == 1
    missing = tmp_path / "no-such-file"
    assert sorted(done.stderr.splitlines()) == sorted([
        f"{config}: routes[0].colour: unknown key",
        f"{config}: worker.concurrency: expected an integer",
        f"{config}: routes[0].notify[1]: unknown notifier 'slack/nobody' (known: ['email/team', 'slack/oncall'])",
        f"{config}: notifiers.slack[0].webhook_url_file: cannot read secret file {missing}: No such file or directory",
        f"{config}: notifiers.email[0].smtp.password_env: environment variable OPSLOOP_TEST_UNSET_PASSWORD is not set",
    ])  # fmt: skip


def test_check_config_reports_template_mistakes_of_several_notifiers_with_the_other_problems(tmp_path: Path) -> None:
    """Templates are compiled at load: a missing template file of one notifier, and an inline subject and
    a template file of another that do not compile, are a line each, by key path, next to an ordinary
    mistake; no secret value is printed."""
    secret_url = "http://127.0.0.1:1/services/T000/B000/very-secret-path"
    broken = tmp_path / "title.txt.j2"
    broken.write_text("{{ alertname }")
    missing = tmp_path / "no-such-template.md.j2"
    config = write_config(
        tmp_path,
        notifiers={
            "slack": [
                {"name": "fine", "webhook_url": secret_url, "templates": {"title": str(tmp_path / "ok.j2")}},
                {"name": "oncall", "webhook_url": secret_url, "templates": {"text": str(missing)}},
            ],
            "email": [{
                "name": "team", "from": "alerts@example.com", "to": ["team@example.com"],
                "smtp": {"host": LOOPBACK}, "subject": "{{ alertname", "templates": {"html": str(broken)},
            }],
        },
        worker={"concurrency": "many"},
    )  # fmt: skip
    (tmp_path / "ok.j2").write_text("{{ alertname }}")
    done = subprocess.run(receiver_argv(config, "--check-config"), capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert sorted(done.stderr.splitlines()) == sorted([
        f"{config}: worker.concurrency: expected an integer",
        f"{config}: notifiers.slack[1].templates.text: cannot read template {missing}: No such file or directory",
        f"{config}: notifiers.email[0].subject: inline template does not compile: unexpected end of template, "
        "expected 'end of print statement'.",
        f"{config}: notifiers.email[0].templates.html: template {broken} does not compile: unexpected '}}'",
    ])  # fmt: skip
    assert "very-secret-path" not in done.stderr + done.stdout


def test_check_config_accepts_a_valid_file_and_reports_missing_secrets(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    done = subprocess.run(receiver_argv(config, "--check-config"), capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, f"{config}: configuration is valid (0 routes, 0 plans)")
    (tmp_path / "token").unlink()
    done = subprocess.run(receiver_argv(config, "--check-config"), capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert "cannot read secret file" in done.stderr
    assert TOKEN not in done.stderr


class ReceiverProcess:
    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.argv = receiver_argv(config, "--web.listen-address", f"{LOOPBACK}:{port}")
        self.url = f"http://{LOOPBACK}:{port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=out, start_new_session=True)
        wait_until(lambda: http_ok(self.url + "/-/ready"), 20, "the receiver")

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(15)


async def post_all(
    url: str, numbers: list[int], acked: set[int], reached: tuple[int, asyncio.Event] | None = None
) -> None:
    """POST one webhook per number, 8 at a time; remember which were acknowledged with a 200.

    ``reached`` is set once that many webhooks are acknowledged."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in numbers:
        queue.put_nowait(n)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:

        async def sender() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                payload = webhook(alert(f"fp{n:04d}", alertname=f"Burst{n:04d}"), group_key="")  # a mail each
                try:
                    async with session.post(url + "/alerts", json=payload, headers=headers) as resp:
                        if resp.status == 200:
                            acked.add(n)
                            if reached is not None and len(acked) >= reached[0]:
                                reached[1].set()
                except (aiohttp.ClientError, TimeoutError):
                    continue  # the receiver was killed mid-request: that webhook was never acknowledged

        await asyncio.gather(*(sender() for _ in range(8)))


@pytest.mark.slow
async def test_kill_9_during_a_burst_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    with SmtpSink() as mailbox:
        config = write_config(
            tmp_path,
            notifiers={"email": [email_notifier("oncall", mailbox.port)]},
            routes=[{"match": {}, "notify": ["email/oncall"]}],
            worker={"poll_interval": "50ms", "lease": "2s", "retry_base": "50ms", "retry_cap": "200ms"},
        )
        process = ReceiverProcess(config, free_port(), tmp_path / "receiver.log")
        process.start()
        acked: set[int] = set()
        third = asyncio.Event()
        burst = asyncio.create_task(post_all(process.url, list(range(BURST)), acked, (BURST // 3, third)))
        await third.wait()
        process.kill()  # mid-burst, mid-delivery: no shutdown of any kind
        await burst
        first_round = set(acked)
        assert 0 < len(first_round) < BURST
        process.start()
        # Alertmanager retries whatever was not acknowledged, and some acknowledged ones again.
        await post_all(process.url, [n for n in range(BURST) if n not in first_round] + sorted(first_round)[:40], acked)
        assert acked == set(range(BURST))
        # A message about every alert (by subject: a repeat must not stand in for a message still to come).
        await asyncio.to_thread(
            wait_until, lambda: len({m["Subject"] for m in mailbox.messages}) >= BURST, 60, "every alert's message"
        )
        # Barrier instead of a pause: a later alert's message. Jobs are claimed in due order, so any
        # repeat of the burst was due earlier and has arrived once the marker has.
        await post_all(process.url, [BURST], acked)
        marker = f"Burst{BURST:04d}"
        await asyncio.to_thread(
            wait_until, lambda: any(marker in m["Subject"] for m in mailbox.messages), 30, "the marker message"
        )
        assert process.stop() == 0
    store = SqliteStore(tmp_path / "receiver.db")
    await store.open()
    views = await store.incidents(limit=10 * BURST)
    await store.close()
    assert len(views) == BURST + 1  # the burst and the marker
    deliveries = [j for v in views for j in v.jobs]
    assert len(deliveries) == BURST + 1
    assert all(j.state == SENT for j in deliveries)
    counts = collections.Counter(m["Subject"] for m in mailbox.messages)
    assert len(counts) == BURST + 1
    # A message is only ever sent twice when the kill landed while it was being handed to the SMTP
    # server (the store then records the interruption); that is the at-least-once edge, nothing more.
    repeated = {subject for subject, count in counts.items() if count > 1}
    interrupted = sum(1 for j in deliveries if j.interrupted)
    assert len(repeated) <= interrupted <= 8
