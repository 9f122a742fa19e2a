"""Group deliveries through a real worker, store, SMTP server and Slack stand-in: what each outcome leaves.

As in ``test_worker_deliveries.py``, the worker runs as in the receiver; the oracles are the store's rows
read with SQL, the messages the real SMTP server took, the Slack stand-in's record, the registry's samples
and the log records the worker writes. Mail is not paced, so these tests wait for no send slot.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from opsloop.receiver.config import ReceiverConfig
from opsloop.receiver.domain import RoutedAlert
from opsloop.receiver.metrics import ReceiverMetrics
from opsloop.receiver.store import Store
from opsloop.testsupport.sinks import SlackSink, SmtpSink
from opsloop.testsupport.slack_api import SlackApiSink

from tests.receiver.harness import email_notifier, eventually
from tests.receiver.test_recovery_outcomes import rows
from tests.receiver.test_recovery_steps import ALERT
from tests.receiver.test_recovery_steps import store as store  # the fixture: a fresh SQLite store
from tests.receiver.test_worker_deliveries import (
    logged,
    notifiers_of,
    running,
    settings,
    slow_mail,
    until_settled,
    worker_of,
)

MAIL = "email/oncall"
COUNT = 200
"""Alerts in a group whose firing fits one Slack message and whose resolution (a long summary) needs three."""
CLOCKS = 0.05
"""Seconds: the stand-in times posts with ``time.monotonic()``, the store with ``time.time()``."""


def grouped(n: int, notifier: str = MAIL, group_key: str = "{}:{}", **labels: str) -> RoutedAlert:
    """Firing alert ``n`` of Alertmanager group ``group_key``, for ``notifier``, sent without a group window."""
    alert = replace(ALERT, fingerprint=f"fp{n}", labels={"alertname": "A", "queue": f"Q{n}", **labels})
    return RoutedAlert(alert, notifiers=(notifier,), group_key=group_key, group_windows={notifier: 0.0})


def resolved(routed: RoutedAlert) -> RoutedAlert:
    return replace(routed, alert=replace(routed.alert, status="resolved", ends_at="2030-01-01T01:00:00Z"))


def text(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]


async def mail_all(store: Store, tmp_path: Path, config: ReceiverConfig, metrics: ReceiverMetrics) -> None:
    """Run a worker until no delivery is pending any more and its last step has finished."""
    pending = "SELECT COUNT(*) FROM jobs WHERE kind = 'delivery' AND state = 'pending'"
    async with notifiers_of(config) as notifiers:
        worker = worker_of(config, store, notifiers, metrics)
        await until_settled(worker, lambda: rows(tmp_path / "r.db", pending) == [(0,)], 20, "every delivery ended")


async def test_a_group_is_one_mail_recorded_logged_and_counted(
    store: Store, tmp_path: Path, mailbox: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "opsloop.receiver.worker")
    metrics = ReceiverMetrics()
    await store.ingest([grouped(n) for n in range(3)], "http://alertmanager.example/", 0, time.time())
    await mail_all(store, tmp_path, settings({"email": [email_notifier("oncall", mailbox.port)]}), metrics)
    (message,) = mailbox.messages
    assert message["Subject"] == "[FIRING] 3 alerts · A"
    assert text(message).endswith("\nAll alerts: http://alertmanager.example/#/alerts\n")
    assert "This may repeat" not in text(message)
    why = "sent in message 1 with 3 alerts of its group"  # job 1 took the group and sent it
    assert rows(tmp_path / "r.db", "SELECT id, state, result FROM jobs ORDER BY id") == [
        (1, "sent", why), (2, "sent", why), (3, "sent", why),
    ]  # fmt: skip
    # the message as sent, once, on the job that sent it: its preview is the mail as the server took it
    preview = f"Subject: {message['Subject']}\nTo: {message['To']}\n\n{text(message)}"
    assert rows(tmp_path / "r.db", "SELECT job_id, kind, title, detail FROM events WHERE kind = 'delivery'") == [
        (1, "delivery", "firing message to email/oncall about 3 alerts of a group", preview),
    ]
    assert logged(caplog, "group message sent", "job", "notifier", "group", "alerts", "left") == [
        (1, MAIL, "email/oncall|firing|{}:{}", 3, 0),
    ]
    sample = metrics.registry.get_sample_value
    assert sample("opsloop_receiver_deliveries_total", {"notifier": MAIL, "result": "sent"}) == 3


def mail_config(port: int, **sections: Any) -> ReceiverConfig:
    return ReceiverConfig.model_validate({
        "auth": {"bearer_token": "t"}, "notifiers": {"email": [email_notifier("oncall", port)]},
        "worker": {"poll_interval": "20ms"}, **sections,
    })  # fmt: skip


@pytest.mark.parametrize(("external_url", "console", "link"), [
    ("https://alertmanager.example", None, "https://alertmanager.example/#/alerts"),
    ("alertmanager.example", None, None),  # not an http(s) URL: nothing to link
    ("http://alertmanager.example/PROD-X/", None, "http://alertmanager.example/PROD-X/#/alerts"),  # one "/" cut
    ("http://alertmanager.example", "https://console.example", "https://console.example/ui/incidents?status=firing"),
])  # fmt: skip
async def test_a_group_mail_links_the_console_else_alertmanager_else_nothing(
    store: Store, tmp_path: Path, mailbox: SmtpSink, external_url: str, console: str | None, link: str | None
) -> None:
    await store.ingest([grouped(n) for n in range(2)], external_url, 0, time.time())
    sections = {"console": {"external_url": console}} if console else {}
    await mail_all(store, tmp_path, mail_config(mailbox.port, **sections), ReceiverMetrics())
    (message,) = mailbox.messages
    links = [line for line in text(message).splitlines() if line.startswith("All alerts")]
    assert links == ([f"All alerts: {link}"] if link else [])


async def test_a_refused_group_mail_fails_every_member_for_good(
    store: Store, tmp_path: Path, mailbox: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "opsloop.receiver.worker")
    metrics = ReceiverMetrics()
    mailbox.refuse_recipient("oncall@example.com")
    await store.ingest([grouped(0, group_key="{}:{a}"), grouped(1, group_key="{}:{a}")], "", 0, time.time())
    await store.ingest([grouped(2, group_key="{}:{b}")], "", 0, time.time())  # a group of one: its own message
    await mail_all(store, tmp_path, mail_config(mailbox.port), metrics)
    refused = "email/oncall: every recipient refused (550)"
    assert (
        rows(tmp_path / "r.db", "SELECT state, result, attempts FROM jobs ORDER BY id")
        == [("failed", f"permanent error: {refused}", 1)] * 3
    )
    ((fields, error),) = [
        (tuple(getattr(r, f) for f in ("job", "notifier", "group", "alerts", "left")), r.error)
        for r in caplog.records if r.getMessage() == "group message failed for good"
    ]  # fmt: skip
    assert fields == (1, MAIL, "email/oncall|firing|{}:{a}", 2, 0)
    assert error == refused
    sample = metrics.registry.get_sample_value
    assert sample("opsloop_receiver_deliveries_total", {"notifier": MAIL, "result": "failed"}) == 3
    assert mailbox.messages == []


async def test_a_group_for_a_notifier_not_configured_fails_at_once(store: Store, tmp_path: Path) -> None:
    metrics = ReceiverMetrics()
    await store.ingest([grouped(n, notifier="email/gone") for n in range(2)], "", 0, time.time())
    await mail_all(store, tmp_path, settings(), metrics)
    why = "notifier email/gone is not configured"
    assert rows(tmp_path / "r.db", "SELECT state, result FROM jobs") == [("failed", why), ("failed", why)]
    sample = metrics.registry.get_sample_value
    assert sample("opsloop_receiver_deliveries_total", {"notifier": "email/gone", "result": "failed"}) == 2


async def test_a_group_of_one_is_its_alerts_own_message_unless_it_may_repeat(
    store: Store, tmp_path: Path, mailbox: SmtpSink
) -> None:
    now = time.time()
    await store.ingest([grouped(0, group_key="{}:{cut}")], "", 0, now - 10)
    assert len(await store.claim("dead", 1, 1.0, now - 10)) == 1  # its worker died holding the lease
    await store.ingest([grouped(1, group_key="{}:{one}")], "", 0, now)
    await mail_all(store, tmp_path, mail_config(mailbox.port), ReceiverMetrics())
    by_queue = {("Q0" if "queue = Q0" in text(m) else "Q1"): m for m in mailbox.messages}
    assert sorted(by_queue) == ["Q0", "Q1"]
    alone, repeat = by_queue["Q1"], by_queue["Q0"]
    assert not alone["Subject"].startswith("[FIRING] 1 alerts")  # the single alert's own message
    assert "This may repeat a message sent just before the receiver restarted." not in text(alone)
    assert repeat["Subject"] == "[FIRING] 1 alerts · A"  # a group message, which can say it may repeat
    assert text(repeat).split("\n")[:3] == [  # the group message says so at its top, before any alert
        "FIRING: 1 alerts · A", "1 firing · 1 no severity",
        "This may repeat a message sent just before the receiver restarted.",
    ]  # fmt: skip
    preview = f"Subject: {alone['Subject']}\nTo: {alone['To']}\n\n{text(alone)}"
    assert rows(tmp_path / "r.db", "SELECT title, detail FROM events WHERE kind = 'delivery' AND job_id = 2") == [
        ("firing message to email/oncall", preview)
    ]
    assert rows(tmp_path / "r.db", "SELECT id, state, result FROM jobs ORDER BY id") == [
        (1, "sent", "sent in message 1 with 1 alerts of its group"), (2, "sent", "sent"),
    ]  # fmt: skip


async def test_a_group_is_leased_while_its_message_is_sent(store: Store, tmp_path: Path) -> None:
    await store.ingest([grouped(n, notifier="email/slow") for n in range(2)], "", 0, time.time())
    with slow_mail(0.6) as (mailbox, notifiers):
        config = settings(notifiers, lease="5s")
        leases: list[tuple[object, ...]] = []

        async def sending() -> bool:
            if mailbox.accepting == 1:
                leases.extend(rows(tmp_path / "r.db", "SELECT owner, until FROM group_leases"))
                return True
            return False

        async with notifiers_of(config) as built, running(worker_of(config, store, built, ReceiverMetrics())):
            await eventually(sending, 10, "the group's message being sent")
            seen = time.time()
    ((owner, until),) = leases
    assert owner == "w"
    assert seen < until <= seen + 5  # leased for the lease's length from when it was taken


def slack_config(slack: SlackSink, *names: str, **worker: object) -> ReceiverConfig:
    """Slack notifiers ``slack/<name>``, each on a webhook of its own (so each has its own send slots)."""
    hooks = [{"name": name, "webhook_url": slack.url(f"/services/{name.upper()}")} for name in names]
    return settings({"slack": hooks}, lease="3s", retry_base="10ms", **worker)


async def attempted(
    store: Store, tmp_path: Path, config: ReceiverConfig, metrics: ReceiverMetrics, want: list[int]
) -> None:
    """Run a worker until the jobs (by id) have made ``want`` attempts, then stop it."""

    def done() -> bool:
        return [a for (a,) in rows(tmp_path / "r.db", "SELECT attempts FROM jobs ORDER BY id")] == want

    async with notifiers_of(config) as notifiers:
        await until_settled(worker_of(config, store, notifiers, metrics), done, 20, f"attempts {want}")


async def test_a_retry_waits_its_tiers_delay_and_a_retry_after_holds_back_the_destination(
    store: Store, tmp_path: Path, slack: SlackSink, caplog: pytest.LogCaptureFixture
) -> None:
    """Four destinations answer 429 with Retry-After 5 s: a single delivery, a group, a group that failed
    once before and a group of one. Quick retries (the first ``delivery_attempts - 1``) wait at most
    ``retry_cap`` (1.25 s, logged rounded to 1.2), later ones what the server asked; every destination is
    held back 5 s."""
    caplog.set_level(logging.INFO, "opsloop.receiver.worker")
    metrics = ReceiverMetrics()
    config = slack_config(slack, "a", "b", "c", "d", delivery_attempts=2, retry_cap="1.25s", redelivery_cap="600s")
    now = time.time()
    await store.ingest([grouped(n, "slack/c", "{}:{c}") for n in (1, 2)], "", 0, now)  # jobs 1 and 2
    (job,) = await store.claim("earlier", 1, 60.0, now)
    members = await store.take_group(job, "earlier", now + 60.0, now)
    assert members is not None
    await store.release_group(job, "earlier", [m.id for m in members], now, now, failed="an earlier 500")
    single = replace(grouped(3), notifiers=("slack/a",), group_key="", group_windows={})
    await store.ingest([single], "", 0, now)  # job 3
    await store.ingest([grouped(n, "slack/b", "{}:{b}") for n in (4, 5)], "", 0, now)  # jobs 4 and 5
    await store.ingest([grouped(6, "slack/d", "{}:{d}")], "", 0, now)  # job 6
    slack.fail_next(4, 429, retry_after=5)
    start = time.time()
    await attempted(store, tmp_path, config, metrics, [2, 2, 1, 1, 1, 1])
    end = time.time()
    assert slack.responses == [429] * 4
    waits = {1: 5.0, 2: 5.0, 3: 1.25, 4: 1.25, 5: 1.25, 6: 1.25}  # job 1 and 2: their second attempt failed
    for job_id, due_at in rows(tmp_path / "r.db", "SELECT id, due_at FROM jobs"):
        assert start + waits[job_id] <= due_at <= end + waits[job_id], job_id
    slots = rows(tmp_path / "r.db", "SELECT next_at FROM send_slots")
    assert len(slots) == 4
    assert all(start + 5 <= next_at <= end + 5 for (next_at,) in slots)
    assert logged(caplog, "delivery failed, will retry", "job", "notifier", "attempt", "delay_seconds") == [
        (3, "slack/a", 1, 1.2)
    ]
    group_retries = sorted(
        tuple(getattr(r, f, None) for f in ("job", "notifier", "group", "alerts", "left", "delay_seconds"))
        for r in caplog.records if r.getMessage() == "group message failed, will retry"
    )  # fmt: skip
    assert group_retries == [
        (1, "slack/c", "slack/c|firing|{}:{c}", 2, 0, 5.0),
        (4, "slack/b", "slack/b|firing|{}:{b}", 2, 0, 1.2),
        (6, "slack/d", None, None, None, 1.2),  # a group of one goes as the alert's own message
    ]
    sample = metrics.registry.get_sample_value
    retries = {
        n: sample("opsloop_receiver_deliveries_total", {"notifier": f"slack/{n}", "result": "retry"}) for n in "abcd"
    }
    assert retries == {"a": 1, "b": 2, "c": 2, "d": 1}


async def test_a_resolved_alert_alone_is_sent_once_its_firing_message_went_out(
    store: Store, tmp_path: Path, mailbox: SmtpSink
) -> None:
    firing = replace(grouped(1), group_key="", group_windows={})  # no group: each message alone
    config = mail_config(mailbox.port)
    await store.ingest([firing], "", 0, time.time())
    await mail_all(store, tmp_path, config, ReceiverMetrics())
    await store.ingest([resolved(firing)], "", 0, time.time())
    await mail_all(store, tmp_path, config, ReceiverMetrics())
    assert [m["Subject"].split(" ", 1)[0] for m in mailbox.messages] == ["[FIRING]", "[RESOLVED]"]
    assert rows(tmp_path / "r.db", "SELECT notify_kind, state, result, attempts FROM jobs ORDER BY id") == [
        ("firing", "sent", "sent", 1), ("resolved", "sent", "sent", 1),
    ]  # fmt: skip


async def test_resolved_waits_a_second_while_its_firing_message_is_being_sent(
    store: Store, tmp_path: Path, mailbox: SmtpSink
) -> None:
    """Another replica holds the firing messages (it is sending them), so they are not replaced: the resolved
    ones must not overtake them and are put off a second at a time, alone or as a group, without an attempt."""
    now = time.time()
    firing = [replace(grouped(1), group_key="", group_windows={}), grouped(2), grouped(3)]
    await store.ingest(firing, "", 0, now)  # jobs 1 (alone), 2 and 3 (a group)
    held = {j.id: j for j in await store.claim("other", 10, 60.0, now)}
    assert await store.take_group(held[2], "other", now + 60.0, now) is not None
    told = time.time()
    await store.ingest([resolved(r) for r in firing], "", 0, told)
    later = "SELECT due_at, attempts FROM jobs WHERE notify_kind = 'resolved'"

    async def put_off() -> bool:
        due = rows(tmp_path / "r.db", later)
        return len(due) == 3 and all(d >= told + 0.5 for d, _ in due)

    config = mail_config(mailbox.port)
    async with notifiers_of(config) as notifiers, running(worker_of(config, store, notifiers, ReceiverMetrics())):
        await eventually(put_off, 10, "the resolved messages put off")
        seen = time.time()
    for due_at, attempts in rows(tmp_path / "r.db", later):
        assert told + 1.0 <= due_at <= seen + 1.0
        assert attempts == 0
    assert mailbox.messages == []


async def test_resolved_alerts_edit_their_firing_messages_and_a_failed_edit_ends_or_retries(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """App mode: the resolution of a group edits the messages its firing went out in. The edit of one of
    them fails for good (its alerts fail, the other message is still edited), then the other's once (the
    group is retried, and that edit goes through)."""
    caplog.set_level(logging.INFO, "opsloop.receiver.worker")
    channel, token = "C0GROUP001", "xoxb-group-test"
    async with SlackApiSink(token=token, channels=(channel,)) as api:
        app = {"name": "app", "token": token, "channel": channel, "api_url": api.url}
        config = settings({"slack": [app]}, lease="3s", retry_base="10ms", retry_cap="20ms")
        first = [grouped(n, "slack/app", "{}:{g}") for n in (1, 2)]
        second = [grouped(n, "slack/app", "{}:{g}") for n in (3, 4)]
        await store.ingest(first, "", 0, time.time())  # jobs 1 and 2: one message
        await attempted(store, tmp_path, config, ReceiverMetrics(), [1, 1])
        await store.ingest(second, "", 0, time.time())  # jobs 3 and 4: the group's next message
        await attempted(store, tmp_path, config, ReceiverMetrics(), [1, 1, 1, 1])
        assert len(api.messages) == 2
        api.fail_next(1, "is_archived")  # the first message's edit fails for good
        api.fail_next(1, "internal_error")  # the second's fails once
        await store.ingest([resolved(r) for r in first + second], "", 0, time.time())  # jobs 5 to 8
        await mail_all(store, tmp_path, config, ReceiverMetrics())
    assert [(method, error) for method, _, error in api.responses[2:]] == [
        ("chat.update", "is_archived"), ("chat.update", "internal_error"), ("chat.update", "ok"),
    ]  # fmt: skip
    refused = "permanent error: slack/app: Slack answered is_archived"
    assert rows(tmp_path / "r.db", "SELECT id, state, result FROM jobs WHERE id > 4 ORDER BY id") == [
        (5, "failed", refused), (6, "failed", refused),
        (7, "sent", "updated message 3 in place"), (8, "sent", "updated message 3 in place"),
    ]  # fmt: skip
    assert logged(caplog, "group message failed, will retry", "job") == [(5,)]
    assert len(api.messages) == 2  # nothing new was posted: both messages were edited (or failed to be)


async def test_a_group_older_than_give_up_after_fails_at_its_next_error(
    store: Store, tmp_path: Path, mailbox: SmtpSink
) -> None:
    metrics = ReceiverMetrics()
    mailbox.fail_next(1)  # 451: a failure worth retrying, but the group is more than a day old
    await store.ingest([grouped(n) for n in range(2)], "", 0, time.time() - 86_401)
    await mail_all(store, tmp_path, mail_config(mailbox.port), metrics)
    why = "gave up after 1 attempts: email/oncall: SMTP 451 4.3.0 Try again later"
    assert rows(tmp_path / "r.db", "SELECT state, result, attempts FROM jobs") == [("failed", why, 1)] * 2
    sample = metrics.registry.get_sample_value
    assert sample("opsloop_receiver_deliveries_total", {"notifier": MAIL, "result": "failed"}) == 2
    assert mailbox.messages == []


async def test_each_alert_of_a_group_mail_says_what_automation_does_about_it(
    store: Store, tmp_path: Path, mailbox: SmtpSink
) -> None:
    """Plan ``fix`` matches alert A only. A's run is held by another replica; the group mail tells, under
    each alert, what automation does about that alert: A's run, and for B that no plan matches it."""
    fix = {"name": "fix", "match": {"alertname": "A"}, "actions": [{"type": "command", "argv": ["/bin/true"]}]}
    config = mail_config(mailbox.port, recovery=[fix])
    now = time.time()
    await store.ingest([replace(grouped(1), plans=[("fix", {})])], "", 0, now)  # its plan job comes first
    (run,) = await store.claim("other", 1, 60.0, now)
    assert run.kind == "plan"
    action = await store.begin_action(run, "other", 0, "command", False, now, now + 60.0)  # it ran one command
    assert action is not None
    await store.end_action(action, True, "exit 0", now)
    await store.ingest([grouped(2, alertname="B")], "", 0, now)
    await mail_all(store, tmp_path, config, ReceiverMetrics())
    (message,) = mailbox.messages
    a, b = text(message).split("\nFIRING\n")[1:]  # each alert in full, in the group's order
    assert (a.split("\n")[0], b.split("\n")[0]) == (
        "A is firing since 2030-01-01 00:00:00 UTC.",
        "B is firing since 2030-01-01 00:00:00 UTC.",
    )
    assert "\nAutomation: plan fix starts\n\nRecovery history:\n" in a
    assert a.split("Recovery history:\n")[1].split("\n")[0].endswith("  fix stage 1 command: ok: exit 0")
    assert "\nAutomation: no plan matches this alert\n" in b
    assert "Recovery history" not in b


async def test_a_groups_mails_thread_under_its_first_whatever_its_key_holds(
    store: Store, tmp_path: Path, mailbox: SmtpSink
) -> None:
    """Alertmanager's group keys hold label values, which may hold a ``|``: two groups whose keys end alike
    after one are still two threads, and each group's resolution replies to its own first mail."""
    keys = ['{}:{queue="a|z"}', '{}:{queue="b|z"}']
    config = mail_config(mailbox.port)
    firing = {key: [grouped(n, group_key=key) for n in (2 * i, 2 * i + 1)] for i, key in enumerate(keys)}
    for key in keys:  # one group after the other: the second group's first mail is not a reply
        await store.ingest(firing[key], "", 0, time.time())
        await mail_all(store, tmp_path, config, ReceiverMetrics())
    await store.ingest([resolved(r) for key in keys for r in firing[key]], "", 0, time.time())
    await mail_all(store, tmp_path, config, ReceiverMetrics())
    first_a, first_b, *resolutions = mailbox.messages
    assert (first_a["In-Reply-To"], first_b["In-Reply-To"]) == (None, None)
    replies = {m["In-Reply-To"]: text(m) for m in resolutions}
    assert sorted(replies) == sorted([first_a["Message-ID"], first_b["Message-ID"]])
    assert "queue = Q0" in replies[first_a["Message-ID"]]
    assert "queue = Q2" in replies[first_b["Message-ID"]]
    # mail cannot be edited: each resolution is a new message (no "updated message ... in place")
    assert rows(tmp_path / "r.db", "SELECT id, result FROM jobs WHERE notify_kind = 'resolved' ORDER BY id") == [
        (5, "sent in message 5 with 2 alerts of its group"), (6, "sent in message 5 with 2 alerts of its group"),
        (7, "sent in message 7 with 2 alerts of its group"), (8, "sent in message 7 with 2 alerts of its group"),
    ]  # fmt: skip


async def test_resolved_alerts_whose_firing_message_cannot_be_edited_get_a_message_of_their_own(
    store: Store, tmp_path: Path, slack: SlackSink
) -> None:
    """A notifier switched from a webhook to app mode under the same name: its firing message went out by
    the webhook, which tells no ``ts`` to edit, so the resolution is a new group message."""
    firing = [grouped(n, "slack/team", "{}:{g}") for n in (1, 2)]
    await store.ingest(firing, "", 0, time.time())
    await mail_all(
        store, tmp_path, settings({"slack": [{"name": "team", "webhook_url": slack.url()}]}), ReceiverMetrics()
    )
    channel, token = "C0GROUP001", "xoxb-group-test"
    async with SlackApiSink(token=token, channels=(channel,)) as api:
        app = {"name": "team", "token": token, "channel": channel, "api_url": api.url}
        await store.ingest([resolved(r) for r in firing], "", 0, time.time())  # jobs 3 and 4
        await mail_all(store, tmp_path, settings({"slack": [app]}), ReceiverMetrics())
    assert [method for method, _, _ in api.responses] == ["chat.postMessage"]
    assert api.messages[0].payload["blocks"][0]["text"]["text"].startswith("RESOLVED")
    assert rows(tmp_path / "r.db", "SELECT id, state, result FROM jobs ORDER BY id") == [
        (1, "sent", "sent in message 1 with 2 alerts of its group"),
        (2, "sent", "sent in message 1 with 2 alerts of its group"),
        (3, "sent", "sent in message 3 with 2 alerts of its group"),
        (4, "sent", "sent in message 3 with 2 alerts of its group"),
    ]


async def test_each_new_reply_of_an_edit_waits_for_the_channels_slot_that_another_sender_holds(
    store: Store, tmp_path: Path
) -> None:
    """App mode: a group's resolution outgrows its firing message and continues in two new replies, each a
    new message in the channel that needs a send slot of its own. Another sender (a replica with messages of
    its own for the channel) holds the channel's slots after the group's: the second reply waits for the
    first slot free after them, which this process's own pacing alone knows nothing of."""
    channel, token = "C0GROUP001", "xoxb-group-test"
    grown = "the queue drained after the consumers were restarted and the backlog was replayed " * 5
    async with SlackApiSink(token=token, channels=(channel,)) as api:
        app = {"name": "app", "token": token, "channel": channel, "api_url": api.url}
        config = settings({"slack": [app]}, lease="3s", retry_base="10ms", retry_cap="20ms")
        firing = [grouped(n, "slack/app", "{}:{g}") for n in range(COUNT)]
        await store.ingest(firing, "", 0, time.time())
        await mail_all(store, tmp_path, config, ReceiverMetrics())
        (message,) = api.messages  # the firing group fits in one message
        async with notifiers_of(config) as notifiers:
            key = notifiers["slack/app"].pace.key
        told = [replace(r, alert=replace(r.alert, annotations={"summary": grown})) for r in map(resolved, firing)]
        ((free,),) = rows(tmp_path / "r.db", "SELECT next_at FROM send_slots")  # after the firing message
        now = max(time.time(), free)
        await store.ingest(told, "", 0, now)
        assert await store.take_slot(10_001, "other", key, 1.0, now) is None  # the other sender posts now
        (job,) = await store.claim("earlier", 1, 60.0, now)  # a worker takes the group: its slot is next
        members = await store.take_group(job, "earlier", now + 60.0, now)
        assert members is not None
        assert await store.group_slot(job, "earlier", [m.id for m in members], key, 1.0, now, False) == now + 1
        held = [await store.take_slot(10_000 + n, "other", key, 1.0, now) for n in (2, 3)]
        assert held == [now + 2, now + 3]  # the other sender's next two messages
        mono = time.monotonic() - (time.time() - now)  # now, as the stand-in's clock reads
        await mail_all(store, tmp_path, config, ReceiverMetrics())
    first, second = [m for m in api.messages if m.thread_ts == message.ts]
    assert first.posted_at >= mono + 1 - CLOCKS  # the group's own slot
    assert second.posted_at >= mono + 4 - CLOCKS  # the first slot free after the other sender's two
    assert all(error == "ok" for _, _, error in api.responses)
    results = rows(tmp_path / "r.db", f"SELECT result FROM jobs WHERE id > {COUNT} ORDER BY id")
    assert len(results) == COUNT
    assert all(r.startswith("updated message 1 in place") for (r,) in results)
    assert sum(r.endswith("in its thread") for (r,) in results) > 0


async def test_a_group_needing_several_paced_messages_waits_for_each_slot_and_is_never_refused_it(
    store: Store, tmp_path: Path, slack: SlackSink
) -> None:
    """After each message the rest of the group is held until the destination's next send slot, one
    interval after that message: it is not taken again before, only to be refused the slot (which would
    hold it a second time). The oracle is the store's ``group_holds`` row, read with SQL while it runs."""
    long = {"summary": "backlog", "runbook_url": "https://runbooks.example.com/" + "q" * 1000}  # a link is not cut
    alerts = [grouped(n, "slack/a", "{}:{a}") for n in range(100)]
    await store.ingest([replace(a, alert=replace(a.alert, annotations=long)) for a in alerts], "", 0, time.time())
    config = slack_config(slack, "a")
    db, holds = tmp_path / "r.db", set()
    offset = time.time() - time.monotonic()

    def all_sent() -> bool:
        holds.update(until for (until,) in rows(db, "SELECT until FROM group_holds"))
        return rows(db, "SELECT COUNT(*) FROM jobs WHERE state = 'pending'") == [(0,)]

    async with notifiers_of(config) as notifiers:
        await until_settled(worker_of(config, store, notifiers, ReceiverMetrics()), all_sent, 30, "every alert sent")
    holds.update(until for (until,) in rows(db, "SELECT until FROM group_holds"))
    sent = [m.received_at + offset for m in slack.messages]
    assert len(sent) >= 3  # the group needed follow-ups
    # Each message held the group until one interval after it went out (less the moments between taking
    # the slot and the stand-in receiving the message): once, and never from a refused slot.
    assert len(holds) == len(sent)
    for until, at in zip(sorted(holds), sent, strict=True):
        assert at + 0.5 < until <= at + 1 + CLOCKS


async def test_a_group_refused_as_too_long_goes_out_in_shorter_messages_each_alert_once(
    store: Store, tmp_path: Path, slack: SlackSink
) -> None:
    """Slack refuses the first message of a two-alert group as too long (a webhook says invalid_blocks):
    the notifier halves its messages' length, and the two alerts, each about 5,000 characters in full,
    go out one per message; neither is recorded as sent in a message that does not show it."""
    body = "\n".join(f"step {i}: " + "y" * 90 for i in range(50))  # about 5,000 characters in full
    alerts = [grouped(n, "slack/a", "{}:{a}", queue=f"QUEUE-{n}-X") for n in range(2)]
    annotations = {"summary": "backlog", "description": body}
    await store.ingest([replace(a, alert=replace(a.alert, annotations=annotations)) for a in alerts], "", 0,
                       time.time())  # fmt: skip
    slack.fail_next(1, 400, error="invalid_blocks")
    config = slack_config(slack, "a")
    pending = "SELECT COUNT(*) FROM jobs WHERE state = 'pending'"
    async with notifiers_of(config) as notifiers:
        worker = worker_of(config, store, notifiers, ReceiverMetrics())
        await until_settled(worker, lambda: rows(tmp_path / "r.db", pending) == [(0,)], 20, "both alerts sent")
    assert slack.responses == [400, 200, 200]
    shown = [re.findall(r"QUEUE-\d-X", json.dumps(m.payload["blocks"])) for m in slack.messages]
    assert sorted(set(found) for found in shown) == [{"QUEUE-0-X"}, {"QUEUE-1-X"}]
    assert [state for (state,) in rows(tmp_path / "r.db", "SELECT state FROM jobs ORDER BY id")] == ["sent", "sent"]
