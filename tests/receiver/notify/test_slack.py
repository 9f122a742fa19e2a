"""SlackNotifier against SlackSink: Block Kit within limits, escaping, pacing and error classes."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from opsloop.receiver.notify import NotifiersConfig, PermanentError, TransientError, build_notifiers
from opsloop.receiver.notify.group import GroupNotification
from opsloop.receiver.notify.slack import TRUNCATED_NOTE, SlackNotifier, sections
from opsloop.testsupport.servers import LOOPBACK, free_port
from opsloop.testsupport.sinks import SlackSink
from opsloop.testsupport.slack_limits import HEADER_TEXT, MAX_BLOCKS, MESSAGE_TEXT, SECTION_TEXT, payload_error

from .conftest import MakeNotification

Build = Callable[..., SlackNotifier]


@pytest.fixture
async def build_slack() -> AsyncIterator[Build]:
    """``build_slack(url, **keys)`` builds notifiers through the config path and closes them after the test."""
    built: list[SlackNotifier] = []

    def build(url: str, **keys: Any) -> SlackNotifier:
        config = NotifiersConfig.model_validate({"slack": [{"name": "oncall", "webhook_url": url, **keys}]})
        notifier = build_notifiers(config)["slack/oncall"]
        assert isinstance(notifier, SlackNotifier)
        built.append(notifier)
        return notifier

    yield build
    for notifier in built:
        await notifier.close()


def section_texts(payload: dict[str, Any]) -> list[str]:
    return [b["text"]["text"] for b in payload["blocks"] if b["type"] == "section"]


async def test_delivers_block_kit_message(
    slack_sink: SlackSink, build_slack: Build, make_notification: MakeNotification
) -> None:
    notifier = build_slack(slack_sink.url(), channel="#ops", username="opsloop")
    await notifier.notify(make_notification())
    [message] = await slack_sink.inbox.wait_for_async(1)
    payload = message.payload
    assert payload["text"] == "FIRING: DLQEntriesIncreasing dlq=dlq:emails"
    assert payload["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "FIRING: DLQEntriesIncreasing dlq=dlq:emails"},
    }
    body = "\n".join(section_texts(payload))
    assert "*Summary:* DLQ dlq:emails is growing" in body
    assert "• *severity*: critical" in body
    assert (payload["channel"], payload["username"]) == ("#ops", "opsloop")
    assert slack_sink.responses == [200]


async def test_mrkdwn_escaping_of_label_values(
    slack_sink: SlackSink, build_slack: Build, make_notification: MakeNotification
) -> None:
    labels = {"alertname": "A&B <x>", "who": "<!channel> <https://evil.example|click>"}
    await build_slack(slack_sink.url()).notify(make_notification(labels=labels))
    [message] = await slack_sink.inbox.wait_for_async(1)
    body = "\n".join(section_texts(message.payload))
    assert "&lt;!channel&gt; &lt;https://evil.example|click&gt;" in body
    assert "<!channel>" not in body
    assert message.payload["text"].startswith("FIRING: A&amp;B &lt;x&gt;")
    assert message.payload["blocks"][0]["text"]["text"].startswith("FIRING: A&B <x>")  # plain_text is literal


async def test_huge_alert_stays_within_slack_limits(
    slack_sink: SlackSink, build_slack: Build, make_notification: MakeNotification
) -> None:
    labels = {f"label_{i:03d}": "v&<" * 400 for i in range(200)}
    labels |= {"alertname": "Huge" + "X" * 300, "giant": "g" * 5000}
    await build_slack(slack_sink.url()).notify(make_notification(labels=labels))
    [message] = await slack_sink.inbox.wait_for_async(1)  # the sink validates like Slack: it was accepted
    blocks = message.payload["blocks"]
    assert len(blocks) <= MAX_BLOCKS
    # The whole message within Slack's documented size for a message's text, not only each block.
    assert MESSAGE_TEXT - SECTION_TEXT < sum(len(b["text"]["text"]) + 1 for b in blocks) <= MESSAGE_TEXT
    header = blocks[0]["text"]["text"]
    assert len(header) == HEADER_TEXT
    assert header.endswith("…")
    texts = section_texts(message.payload)
    assert all(0 < len(t) <= SECTION_TEXT for t in texts)
    assert texts[-1].endswith(TRUNCATED_NOTE)
    # Cuts never split an escape: every & starts a complete entity.
    joined = "".join(texts)
    assert joined.count("&") == joined.count("&amp;") + joined.count("&lt;") + joined.count("&gt;")


def test_sections_split_at_line_breaks() -> None:
    body = "\n".join(f"line {i} " + "x" * 90 for i in range(100))
    chunks = sections(body, limit=1000)
    assert all(len(c) <= 1000 for c in chunks)
    assert "\n".join(chunks) == body
    assert [c.count("\n") + 1 for c in chunks] == [10] * 10


def test_sections_cut_a_long_line_before_an_escape() -> None:
    [chunk] = sections("a" * 8 + "&amp;b", limit=10)
    assert chunk == "a" * 8 + "…"


async def test_rate_limit_429_is_honoured_with_retry_after(
    slack_sink: SlackSink, build_slack: Build, make_notification: MakeNotification
) -> None:
    slack_sink.fail_next(1, status=429, retry_after=1)
    notifier = build_slack(slack_sink.url())
    started = time.monotonic()
    with pytest.raises(TransientError) as raised:
        await notifier.notify(make_notification())
    assert raised.value.retry_after == 1
    await notifier.notify(make_notification())  # the webhook's pacer waits out the Retry-After
    assert time.monotonic() - started >= 1.0
    assert slack_sink.responses == [429, 200]
    assert len(slack_sink.messages) == 1


async def test_server_errors_are_retried(
    slack_sink: SlackSink, build_slack: Build, make_notification: MakeNotification
) -> None:
    slack_sink.fail_next(2, status=500)
    notifier = build_slack(slack_sink.url())
    with pytest.raises(TransientError, match="Slack answered 500"):
        await notifier.notify(make_notification())
    slack_sink.fail_next(1, status=503)  # one more queued failure: 500, 503 then success
    for _ in range(2):
        with pytest.raises(TransientError, match=r"Slack answered 50[03]"):
            await notifier.notify(make_notification())
    await notifier.notify(make_notification())
    assert slack_sink.responses == [500, 500, 503, 200]
    assert len(slack_sink.messages) == 1


@pytest.mark.parametrize("status", [400, 403, 410])
async def test_client_errors_are_permanent_and_not_retried(
    slack_sink: SlackSink, build_slack: Build, make_notification: MakeNotification, status: int
) -> None:
    slack_sink.fail_next(1, status=status)
    notifier = build_slack(slack_sink.url())
    with pytest.raises(PermanentError, match=f"Slack answered {status}"):
        await notifier.notify(make_notification())
    assert slack_sink.responses == [status]


async def test_unknown_webhook_is_permanent_with_slacks_code(
    slack_sink: SlackSink, build_slack: Build, make_notification: MakeNotification
) -> None:
    with pytest.raises(PermanentError, match="404 no_service"):
        await build_slack(slack_sink.url("/hooks/unknown")).notify(make_notification())


async def test_two_notifiers_on_one_url_are_paced_to_one_message_a_second(
    slack_sink: SlackSink, make_notification: MakeNotification
) -> None:
    url = slack_sink.url()
    config = NotifiersConfig.model_validate(
        {"slack": [{"name": "oncall", "webhook_url": url}, {"name": "ui-team", "webhook_url": url}]}
    )
    notifiers = build_notifiers(config)
    try:
        await asyncio.gather(
            notifiers["slack/oncall"].notify(make_notification()),
            notifiers["slack/ui-team"].notify(make_notification(kind="escalation")),
            notifiers["slack/oncall"].notify(make_notification(kind="resolved")),
        )
    finally:
        for notifier in notifiers.values():
            await notifier.close()
    assert slack_sink.responses == [200, 200, 200]
    times = [m.received_at for m in slack_sink.messages]
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(times))  # the sink's clock: paced, 1 s apart


async def test_notifiers_on_different_urls_are_not_paced_together(
    slack_sink: SlackSink, make_notification: MakeNotification
) -> None:
    config = NotifiersConfig.model_validate(
        {
            "slack": [
                {"name": "a", "webhook_url": slack_sink.url("/services/A")},
                {"name": "b", "webhook_url": slack_sink.url("/services/B")},
            ]
        }
    )
    notifiers = build_notifiers(config)
    try:
        started = time.monotonic()
        await asyncio.gather(*(n.notify(make_notification()) for n in notifiers.values()))
        assert time.monotonic() - started < 0.9
    finally:
        for notifier in notifiers.values():
            await notifier.close()
    assert sorted(m.path for m in slack_sink.messages) == ["/services/A", "/services/B"]


async def test_connection_refused_is_transient_and_never_shows_the_url(
    build_slack: Build, make_notification: MakeNotification, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = build_slack(f"http://{LOOPBACK}:{free_port()}/services/T1/B1/SECRETTOKEN")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TransientError) as raised:
        await notifier.notify(make_notification())
    assert str(raised.value) == "slack/oncall: ClientConnectorError"
    assert raised.value.__cause__ is None
    assert "SECRETTOKEN" not in caplog.text


async def test_timeout_is_transient(build_slack: Build, make_notification: MakeNotification) -> None:
    release = asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await release.wait()  # no answer before the client gave up: only its timeout can end the wait
        writer.close()

    server = await asyncio.start_server(never_answer, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        notifier = build_slack(f"http://{LOOPBACK}:{port}/services/T/B/X", timeout="200ms")
        with pytest.raises(TransientError, match="timed out"):
            await notifier.notify(make_notification())
    finally:
        release.set()
        server.close()


def test_every_kind_produces_a_payload_slack_accepts(build_slack: Build, make_notification: MakeNotification) -> None:
    notifier = build_slack("https://hooks.slack.invalid/services/T/B/X")
    for kind in ("firing", "resolved", "escalation", "recovered", "automation_paused"):
        payload = notifier.payload(make_notification(kind=kind))
        assert payload_error(payload) is None, kind


async def test_a_webhook_message_refused_as_too_long_is_retried_at_half_its_length(
    slack_sink: SlackSink, build_slack: Build, make_notification: MakeNotification
) -> None:
    """A webhook refuses any block it does not take with invalid_blocks; a message within every documented
    limit was most likely refused for its length (Slack has refused blocks of about 13,000 characters in
    all), so it is sent again within half its length. A short one is refused for good."""
    error = "invalid_blocks"
    notifier = build_slack(slack_sink.url())
    body = "\n".join(f"line {i}: " + "x" * 90 for i in range(1_000))  # about 100,000 characters
    huge = make_notification(annotations={"summary": "backlog", "description": body})
    slack_sink.fail_next(1, 400, error=error)
    with pytest.raises(TransientError, match=error):
        await notifier.notify(huge)
    await notifier.notify(huge)  # sent again within half the text of the refused message
    [message] = await slack_sink.inbox.wait_for_async(1)
    size = sum(len(b["text"]["text"]) for b in message.payload["blocks"])
    assert MESSAGE_TEXT // 2 - SECTION_TEXT < size <= MESSAGE_TEXT // 2
    assert section_texts(message.payload)[-1].endswith(TRUNCATED_NOTE)
    # A message as short as messages are ever cut to is refused for good.
    slack_sink.fail_next(1, 400, error=error)
    with pytest.raises(PermanentError, match=error):
        await notifier.notify(make_notification())


async def test_a_group_message_fitted_before_messages_were_shortened_is_fitted_again_not_sent_short(
    slack_sink: SlackSink, build_slack: Build, make_notification: MakeNotification
) -> None:
    """Two group messages of one notifier are fitted, then Slack refuses the first as too long: the second,
    fitted to the old length, must not go out holding fewer alerts than it will be recorded as sending."""
    notifier = build_slack(slack_sink.url())
    alerts = [
        make_notification(
            fingerprint=f"f{n}", labels={"alertname": "QueueBacklog", "queue": f"Q{n:04d}Z"},
            annotations={"summary": "backlog", "runbook_url": "https://runbooks.example.com/queue"},
        )
        for n in range(1_000)
    ]  # fmt: skip
    first, second = (GroupNotification("firing", half) for half in (alerts[:500], alerts[500:]))
    parts = [g.but(g.alerts[: notifier.group_fit(g)]) for g in (first, second)]
    slack_sink.fail_next(1, 400, error="invalid_blocks")
    with pytest.raises(TransientError, match="invalid_blocks"):
        await notifier.notify_group(parts[0])
    with pytest.raises(TransientError, match="fitted again"):
        await notifier.notify_group(parts[1])
    assert slack_sink.messages == []
    again = second.but(second.alerts[: notifier.group_fit(second)])  # fitted anew, it goes out whole
    await notifier.notify_group(again)
    [message] = await slack_sink.inbox.wait_for_async(1)
    shown = re.findall(r"Q\d{4}Z", json.dumps(message.payload["blocks"]))
    assert shown == [n.incident.labels["queue"] for n in again.alerts]
