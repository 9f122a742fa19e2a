"""Grouped notifications: one message per Alertmanager group, follow-ups when a group outgrows a message,
never an alert dropped or told twice; resolutions and plans that did not run join the group's messages.

Messages are judged by the stand-ins and Slack's documented limits (``slack_limits``), and each alert is
found by a label value only it carries, so the count is independent of how the notifier lays messages out.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from opsloop.receiver.config import WorkerConfig
from opsloop.receiver.domain import SENT
from opsloop.receiver.worker import retry_delay
from opsloop.testsupport.servers import PostgresServer, free_port, wait_until
from opsloop.testsupport.services import spawn_service
from opsloop.testsupport.sinks import SlackSink, SmtpSink
from opsloop.testsupport.slack_api import SlackApiSink
from opsloop.testsupport.slack_limits import MAX_BLOCKS, SECTION_TEXT, payload_error

from tests.receiver.harness import (
    TOKEN,
    Receiver,
    alert,
    email_notifier,
    eventually,
    slack_notifier,
    webhook,
    write_config,
)
from tests.receiver.store.conftest import fresh_postgres_url
from tests.receiver.test_takeover import kill_9, request

Start = Callable[[Path], Awaitable[Receiver]]
ALERT = re.compile(r"Q\d{4}Z")
"""The ``queue`` label value of each test alert: unique, and found nowhere else in a message."""
LONG = "the queue is not draining and its consumers keep restarting " * 5


def queued(n: int, **labels: str) -> dict[str, Any]:
    return alert(f"f{n:04d}", alertname="QueueBacklog", queue=f"Q{n:04d}Z", **labels)


def tokens(payload: object) -> Counter[str]:
    """How often each alert appears in a message (its blocks; the ``text`` fallback names no alert)."""
    blocks = payload["blocks"] if isinstance(payload, dict) else payload
    return Counter(ALERT.findall(json.dumps(blocks)))


async def slack_receiver(tmp_path: Path, receivers: Start, slack: SlackSink, store: str | None) -> Receiver:
    sections: dict[str, Any] = {"store": store} if store else {}
    return await receivers(
        write_config(
            tmp_path, notifiers={"slack": [slack_notifier("team", slack.url())]},
            routes=[{"match": {}, "notify": ["slack/team"], "group_window": "1s"}], **sections,
        )
    )  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    return fresh_postgres_url(request.getfixturevalue("postgres_server"), "groups")


async def test_a_group_too_large_for_one_message_follows_up_and_loses_nothing(
    tmp_path: Path, receivers: Start, slack: SlackSink, store_url: str | None
) -> None:
    count = 300
    receiver = await slack_receiver(tmp_path, receivers, slack, store_url)
    alerts = [queued(n, severity="critical" if n % 50 == 0 else "warning") for n in range(count)]
    for a in alerts:
        a["annotations"] = {"summary": LONG, "runbook_url": "https://runbooks.example.com/queue-backlog"}
    assert (await receiver.post(webhook(*alerts)))[0] == 200

    async def everyone_told() -> bool:
        return len(sum((tokens(m.payload) for m in slack.messages), Counter())) == count

    await receiver.settled(60)
    assert await everyone_told()
    seen = sum((tokens(m.payload) for m in slack.messages), Counter())
    assert set(seen.values()) == {1}  # every alert exactly once, in exactly one message
    assert 2 <= len(slack.messages) <= 10  # grouped, and the group needed follow-ups
    for message in slack.messages:
        assert payload_error(message.payload) is None
        assert len(message.payload["blocks"]) <= MAX_BLOCKS
        assert all(len(b["text"]["text"]) <= SECTION_TEXT for b in message.payload["blocks"][1:])
    first = json.dumps(slack.messages[0].payload, ensure_ascii=False)
    lead = slack.messages[0].payload["blocks"][2]["text"]["text"]
    assert lead.startswith("🔴 *CRITICAL · FIRING*")  # the critical alerts lead the first message, in full
    assert all(f"Q{n:04d}Z" in first for n in range(0, count, 50))
    assert "more alerts of this group in the next message" in first
    # The store says which message carried each alert: as many messages as Slack received.
    views = await receiver.incidents()
    jobs = [j for v in views.values() for j in v.jobs]
    assert all(j.state == SENT for j in jobs)
    carried = Counter(j.result for j in jobs)
    assert len(carried) == len(slack.messages)
    assert sorted(carried.values()) == sorted(sum(tokens(m.payload).values()) for m in slack.messages)


async def test_resolving_a_group_replaces_what_was_not_sent_and_tells_the_rest_once(
    tmp_path: Path, receivers: Start, slack: SlackSink
) -> None:
    receiver = await slack_receiver(tmp_path, receivers, slack, None)
    assert (await receiver.post(webhook(*(queued(n) for n in range(40)))))[0] == 200
    (firing,) = await slack.inbox.wait_for_async(1, 15)
    resolved = [queued(n) | {"status": "resolved", "endsAt": "2030-01-02T05:00:00Z"} for n in range(40)]
    late = [queued(n) for n in range(40, 60)]  # join the group after its first message, then resolve at once
    assert (await receiver.post(webhook(*late)))[0] == 200
    more = [a | {"status": "resolved", "endsAt": "2030-01-02T05:00:00Z"} for a in late]
    assert (await receiver.post(webhook(*resolved, *more)))[0] == 200
    await receiver.settled(30)
    headers = [m.payload["blocks"][0]["text"]["text"] for m in slack.messages]
    assert [h.split(":")[0] for h in headers] == ["FIRING", "RESOLVED"]
    assert tokens(firing.payload) == Counter(f"Q{n:04d}Z" for n in range(40))
    # The late alerts' firing message had not gone out: replaced, and the resolution tells all 60 once.
    assert tokens(slack.messages[1].payload) == Counter(f"Q{n:04d}Z" for n in range(60))
    states = Counter((j.notify_kind, j.state) for v in (await receiver.incidents()).values() for j in v.jobs)
    assert states == {("firing", SENT): 40, ("firing", "replaced"): 20, ("resolved", SENT): 60}


async def test_email_sends_one_mail_per_group_and_threads_its_resolution(
    tmp_path: Path, receivers: Start, mailbox: SmtpSink
) -> None:
    config = write_config(
        tmp_path, notifiers={"email": [email_notifier("oncall", mailbox.port)]},
        routes=[{"match": {}, "notify": ["email/oncall"], "group_window": "0s"}],  # one webhook: one group
    )  # fmt: skip
    receiver = await receivers(config)
    assert (await receiver.post(webhook(*(queued(n, severity="warning") for n in range(25)))))[0] == 200
    (first,) = await mailbox.inbox.wait_for_async(1, 15)
    text = first.get_body(("plain",)).get_content()
    assert Counter(ALERT.findall(text)) == Counter(f"Q{n:04d}Z" for n in range(25))
    assert first["Subject"] == "[FIRING] 25 alerts · QueueBacklog"
    assert "25 firing · 25 warning" in text
    html = first.get_body(("html",)).get_content()
    assert "#e37400" in html  # the band in the colour of the group's most severe alert (warning)
    resolved = [queued(n, severity="warning") | {"status": "resolved", "endsAt": "2030-01-02T05:00:00Z"}
                for n in range(25)]  # fmt: skip
    assert (await receiver.post(webhook(*resolved)))[0] == 200
    await receiver.settled(30)
    assert len(mailbox.messages) == 2
    second = mailbox.messages[1]
    assert second["Subject"] == "[RESOLVED] 25 alerts · QueueBacklog"
    assert (second["In-Reply-To"], second["References"]) == (first["Message-ID"], first["Message-ID"])
    assert second["Message-ID"] != first["Message-ID"]


async def test_runs_a_guard_skipped_are_listed_in_one_group_message(
    tmp_path: Path, receivers: Start, slack: SlackSink
) -> None:
    """A storm guard that stops a plan for many alerts of one group: one message lists them, with why."""
    marker = tmp_path / "runs.log"
    append = {"type": "command", "argv": ["/bin/sh", "-c", f"echo run >> {marker}"]}
    plan = {
        "name": "drain", "match": {"alertname": "QueueBacklog"}, "actions": [append], "notify_firing": False,
        "storm_guard": {"max_runs": 3, "window": "10m"},
    }  # fmt: skip
    config = write_config(
        tmp_path, notifiers={"slack": [slack_notifier("team", slack.url())]}, recovery=[plan],
        routes=[{"match": {}, "notify": ["slack/team"], "group_window": "1s"}],
    )  # fmt: skip
    receiver = await receivers(config)
    assert (await receiver.post(webhook(*(queued(n) for n in range(20)))))[0] == 200
    await receiver.settled(30)
    headers = [m.payload["blocks"][0]["text"]["text"] for m in slack.messages]
    assert sum(h.startswith("AUTOMATION PAUSED") for h in headers) == 1  # the guard tells a human once
    notes = [m for m, h in zip(slack.messages, headers, strict=True) if h.startswith("FIRING")]
    assert len(notes) == 1  # not one note per skipped run
    listed = tokens(notes[0].payload)
    assert set(listed.values()) == {1}
    assert "storm guard: 3 runs of this plan" in json.dumps(notes[0].payload)
    runs = len(marker.read_text().split())
    assert runs == 3
    assert len(listed) == 20 - runs  # every skipped run, each once


def test_retry_delays_are_short_first_then_back_off_to_the_redelivery_cap() -> None:
    settings = WorkerConfig(delivery_attempts=3, retry_base=1.0, retry_cap=4.0, redelivery_cap=600.0)
    for _ in range(200):  # full jitter: check the bounds over many draws
        assert 1.0 <= retry_delay(settings, 1, None) <= 1.0  # base * 2**0, and never below base
        assert 1.0 <= retry_delay(settings, 2, None) <= 2.0
        assert 1.0 <= retry_delay(settings, 3, None) <= 4.0  # no longer quick: up to base * 2**2
        assert 1.0 <= retry_delay(settings, 12, None) <= 600.0
    assert retry_delay(settings, 1, 90.0) == 4.0  # a quick retry cuts a long Retry-After to retry_cap
    assert retry_delay(settings, 5, 90.0) == 90.0  # a later one waits what the server asked
    assert max(retry_delay(settings, 12, None) for _ in range(200)) > 4.0  # later retries do back off further


async def test_a_failing_mail_server_never_holds_the_worker(
    tmp_path: Path, receivers: Start, slack: SlackSink, mailbox: SmtpSink
) -> None:
    """One worker slot: while the mail server refuses (451), a Slack message still goes out at once."""
    config = write_config(
        tmp_path,
        notifiers={"slack": [slack_notifier("team", slack.url())], "email": [email_notifier("oncall", mailbox.port)]},
        routes=[{"match": {"alertname": "Mail"}, "notify": ["email/oncall"]}, {"match": {}, "notify": ["slack/team"]}],
        worker={"concurrency": 1, "poll_interval": "50ms", "lease": "3s", "retry_base": "1s", "retry_cap": "1s",
                "delivery_attempts": 3},
    )  # fmt: skip
    receiver = await receivers(config)
    mailbox.fail_next(2)
    assert (await receiver.post(webhook(alert("mail", alertname="Mail"), group_key="")))[0] == 200

    async def first_attempt_failed() -> bool:
        (job,) = (await receiver.incidents())["mail"].jobs
        return job.attempts == 1

    await eventually(first_attempt_failed, 10, "the first mail attempt")
    assert (await receiver.post(webhook(alert("chat"), group_key="")))[0] == 200
    await slack.inbox.wait_for_async(1, 5)
    assert not mailbox.messages  # the mail waits in the store for its retry, not in the only worker
    await mailbox.inbox.wait_for_async(1, 15)
    await receiver.settled()
    (job,) = (await receiver.incidents())["mail"].jobs
    assert (job.state, job.attempts) == (SENT, 3)


@pytest.mark.slow
def test_kill_9_while_a_group_message_is_handed_over_resends_it_once_as_a_possible_repeat(tmp_path: Path) -> None:
    repeat = "This may repeat a message sent just before the receiver restarted."
    with SmtpSink() as mailbox:
        mailbox.accept_delay = 5.0  # the mail server takes the message and answers late: it is in flight
        config = write_config(
            tmp_path, notifiers={"email": [email_notifier("oncall", mailbox.port)]},
            routes=[{"match": {}, "notify": ["email/oncall"], "group_window": "0s"}],
            worker={"poll_interval": "100ms", "lease": "60s"},
        )  # fmt: skip
        port = free_port()
        first = spawn_service("receiver", config, port, tmp_path, name="first")
        second = None
        try:
            request(port, "POST", "/alerts", webhook(*(queued(n) for n in range(30))), token=TOKEN)
            mailbox.inbox.wait_for(1, 15)
            kill_9(first)
            second = spawn_service("receiver", config, port, tmp_path, name="second")
            mailbox.inbox.wait_for(2, 15)  # the lease is a minute: only the takeover explains this

            def all_sent() -> bool:
                found = request(port, "GET", "/api/incidents?limit=100")["incidents"]
                return len(found) == 30 and all(d["state"] == SENT for i in found for d in i["deliveries"])

            wait_until(all_sent, 15, "the group recorded as sent")
        finally:
            for process in (second, first):
                if process is not None:
                    process.stop()
    assert len(mailbox.messages) == 2
    bodies = [m.get_body(("plain",)).get_content() for m in mailbox.messages]
    assert repeat not in bodies[0]
    assert repeat in bodies[1]
    for body in bodies:  # the same 30 alerts, each once per message: nothing else repeated
        assert Counter(ALERT.findall(body)) == Counter(f"Q{n:04d}Z" for n in range(30))


@pytest.mark.slow
async def test_two_replicas_racing_for_one_group_send_it_as_one_message(
    tmp_path: Path, receivers: Start, slack: SlackSink, postgres_server: PostgresServer
) -> None:
    """Two replicas on one PostgreSQL store poll every 10 ms, so their claims of a group that becomes due
    meet in the same instant; round after round, one of them sends the whole group as one message."""
    rounds, size = 12, 30
    store = fresh_postgres_url(postgres_server, "race")
    config = write_config(
        tmp_path, notifiers={"slack": [slack_notifier("team", slack.url())]}, store=store,
        routes=[{"match": {}, "notify": ["slack/team"], "group_window": "0s"}],
        worker={"poll_interval": "10ms", "lease": "5s"},
    )  # fmt: skip
    replicas = [await receivers(config), await receivers(config)]
    for n in range(rounds):
        alerts = [queued(n * size + i) for i in range(size)]
        payload = webhook(*alerts, group_key=f'{{}}:{{round="{n}"}}')
        answers = await asyncio.gather(*(r.post(payload) for r in replicas))  # both HA peers send it
        assert [status for status, _ in answers] == [200, 200]
        await replicas[0].settled(30)
        seen = tokens(slack.messages[-1].payload)
        assert len(slack.messages) == n + 1, f"round {n}: the group was split into several messages"
        assert seen == Counter(f"Q{n * size + i:04d}Z" for i in range(size))
    everything = sum((tokens(m.payload) for m in slack.messages), Counter())
    assert everything == Counter(f"Q{i:04d}Z" for i in range(rounds * size))  # each alert in exactly one message


async def test_app_mode_edits_that_outgrow_a_message_continue_in_its_thread_and_lose_nothing(
    tmp_path: Path, receivers: Start
) -> None:
    """Resolved alerts whose summary grew no longer fit in the messages their firing went out in: each message
    is edited to hold what fits and the rest continue in replies in its thread, every alert in exactly one."""
    count, channel, token = 300, "C0GROUP001", "xoxb-group-test"
    async with SlackApiSink(token=token, channels=(channel,)) as api:
        app = {"name": "app", "token": token, "channel": channel, "api_url": api.url}
        receiver = await receivers(
            write_config(tmp_path, notifiers={"slack": [app]},
                         routes=[{"match": {}, "notify": ["slack/app"], "group_window": "1s"}])
        )  # fmt: skip
        firing = [queued(n, severity="warning") | {"annotations": {"summary": LONG[:100]}} for n in range(count)]
        assert (await receiver.post(webhook(*firing)))[0] == 200
        await receiver.settled(30)
        posted = list(api.messages)
        assert 2 <= len(posted) <= 3  # the group needed more than one message
        assert sum((tokens(m.payload) for m in posted), Counter()) == Counter(f"Q{n:04d}Z" for n in range(count))
        grown = "the queue drained after the consumers were restarted and the backlog was replayed " * 5
        resolved = [
            queued(n, severity="warning") | {"status": "resolved", "endsAt": "2030-01-02T05:00:00Z",
                                             "annotations": {"summary": grown}}
            for n in range(count)
        ]  # fmt: skip
        assert (await receiver.post(webhook(*resolved)))[0] == 200
        await receiver.settled(60)
    replies = [m for m in api.messages if m.thread_ts is not None]
    assert len(replies) >= 2  # the edits did not fit: continued in threads
    assert all(error != "ratelimited" for _, _, error in api.responses)  # each reply took a send slot
    assert len(api.messages) == len(posted) + len(replies)  # no new message in the channel itself
    for message in posted:
        thread = [message, *(r for r in replies if r.thread_ts == message.ts)]
        shown = sum((tokens(m.payload) for m in thread), Counter())
        assert shown == tokens(message.history[0])  # the message and its replies: its own alerts, each once
        assert all(payload_error(m.payload, web_api=True) is None for m in thread)
        for m in thread:
            assert m.payload["blocks"][0]["text"]["text"].startswith("RESOLVED")
        if len(thread) > 1:
            assert "more alerts of this group in this message's thread" in json.dumps(message.payload)
    views = await receiver.incidents()
    results = [j.result for v in views.values() for j in v.jobs if j.notify_kind == "resolved"]
    assert len(results) == count
    assert all(r.startswith("updated message ") for r in results)
    assert sum("in its thread" in r for r in results) == sum(sum(tokens(r.payload).values()) for r in replies)
    # Each resolved delivery names the message that shows its alert now, as Slack knows it (its ts).
    shown_in = {alert: m.ts for m in api.messages for alert in tokens(m.payload)}
    # ... and says which message it updated (the group message its firing went out in, by the id the firing
    # delivery names) and, for a reply, which part of the thread: the message itself is part 1.
    part = {m.ts: 1 for m in posted}
    for message in posted:
        part |= {r.ts: n for n, r in enumerate((r for r in replies if r.thread_ts == message.ts), start=2)}
    for view in views.values():
        (told,) = [j for j in view.jobs if j.notify_kind == "resolved"]
        assert told.message_ref == shown_in[view.incident.labels["queue"]]
        (fired,) = [j for j in view.jobs if j.notify_kind == "firing"]
        batch = re.fullmatch(r"sent in message (\d+) with \d+ alerts of its group", fired.result)
        assert batch is not None
        where = f", part {part[told.message_ref]} in its thread" if part[told.message_ref] > 1 else ""
        assert told.result == f"updated message {batch[1]} in place{where}"
