"""SlackAppNotifier against the Web API stand-in: post, edit in place, thread replies, error classes."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from opsloop.receiver.notify import (
    Notification,
    NotifiersConfig,
    PermanentError,
    TransientError,
    build_notifiers,
    edits,
)
from opsloop.receiver.notify.group import EMPTIED_WORDS, GroupNotification
from opsloop.receiver.notify.slack_app import SlackAppNotifier
from opsloop.receiver.store import open_store
from opsloop.testsupport.slack_api import SlackApiMessage, SlackApiSink
from opsloop.testsupport.slack_limits import POST_INTERVAL, RATE_TOLERANCE

from .conftest import MakeNotification

TOKEN = "xoxb-opsloop-app"
CHANNEL = "C0APPMODE1"


@pytest.fixture
async def api() -> AsyncIterator[SlackApiSink]:
    async with SlackApiSink(token=TOKEN, channels=(CHANNEL,)) as sink:
        yield sink


@pytest.fixture
async def notifier(api: SlackApiSink, tmp_path: Path) -> AsyncIterator[SlackAppNotifier]:
    (tmp_path / "token").write_text(TOKEN + "\n")
    config = NotifiersConfig.model_validate(
        {"slack": [{"name": "app", "token_file": str(tmp_path / "token"), "channel": CHANNEL, "api_url": api.url}]}
    )
    built = build_notifiers(config)["slack/app"]
    assert isinstance(built, SlackAppNotifier)
    yield built
    await built.close()


def header(payload: dict[str, object]) -> str:
    return payload["blocks"][0]["text"]["text"]  # type: ignore[index]


async def test_resolved_edits_the_firing_message_in_place(
    api: SlackApiSink, notifier: SlackAppNotifier, make_notification: MakeNotification
) -> None:
    await notifier.notify(make_notification())
    await notifier.notify(make_notification(kind="resolved", status="resolved"))
    (message,) = api.messages
    assert header(message.history[0]).startswith("FIRING: ")
    assert header(message.payload).startswith("RESOLVED: ")
    assert [(m, r) for m, _, r in api.responses] == [("chat.postMessage", "ok"), ("chat.update", "ok")]


async def test_plan_progress_goes_into_the_thread_and_escalations_also_to_the_channel(
    api: SlackApiSink, notifier: SlackAppNotifier, make_notification: MakeNotification
) -> None:
    await notifier.notify(make_notification())
    await notifier.notify(make_notification(note="plan fix did not run: cooldown"))
    await notifier.notify(make_notification(kind="escalation", note="plan fix ran all 3 stages"))
    parent, note, escalation = await api.posts.wait_for_async(3)
    assert (parent.thread_ts, note.thread_ts, escalation.thread_ts) == (None, parent.ts, parent.ts)
    assert header(escalation.payload).startswith("ESCALATION: ")
    # the stand-in kept each post a slot apart: none was refused for the rate
    assert [r for _, status, r in api.responses if status == 429] == []
    assert note.posted_at - parent.posted_at >= POST_INTERVAL * RATE_TOLERANCE


async def test_an_edit_of_a_message_slack_lost_posts_a_new_one(
    api: SlackApiSink, notifier: SlackAppNotifier, make_notification: MakeNotification
) -> None:
    await notifier.notify(make_notification())
    api.fail_next(1, "message_not_found")
    await notifier.notify(make_notification(kind="resolved", status="resolved"))
    first, second = await api.posts.wait_for_async(2)
    assert header(first.payload).startswith("FIRING: ")
    assert header(second.payload).startswith("RESOLVED: ")
    assert second.thread_ts is None


@pytest.mark.parametrize("error", ["invalid_auth", "channel_not_found", "msg_too_long", "not_authed"])
async def test_permanent_errors(
    api: SlackApiSink, notifier: SlackAppNotifier, make_notification: MakeNotification, error: str
) -> None:
    api.fail_next(1, error)
    with pytest.raises(PermanentError, match=error):
        await notifier.notify(make_notification())
    assert api.messages == []


@pytest.mark.parametrize("error", ["internal_error", "service_unavailable"])
async def test_slack_side_errors_are_retried(
    api: SlackApiSink, notifier: SlackAppNotifier, make_notification: MakeNotification, error: str
) -> None:
    api.fail_next(1, error)
    with pytest.raises(TransientError, match=error):
        await notifier.notify(make_notification())
    await notifier.notify(make_notification())
    assert len(api.messages) == 1


async def test_ratelimited_carries_retry_after_and_holds_the_channel(
    api: SlackApiSink, notifier: SlackAppNotifier, make_notification: MakeNotification
) -> None:
    api.fail_next(1, "ratelimited", retry_after=2)
    with pytest.raises(TransientError) as raised:
        await notifier.notify(make_notification())
    assert raised.value.retry_after == 2
    started = time.monotonic()
    await notifier.notify(make_notification())  # waits out the server's wish before posting again
    assert time.monotonic() - started >= 1.9
    assert len(api.messages) == 1


async def test_wrong_token_is_refused_by_the_server_not_guessed(
    api: SlackApiSink, tmp_path: Path, make_notification: MakeNotification
) -> None:
    (tmp_path / "token").write_text("xoxb-wrong\n")
    config = NotifiersConfig.model_validate(
        {"slack": [{"name": "app", "token_file": str(tmp_path / "token"), "channel": CHANNEL, "api_url": api.url}]}
    )
    notifier = build_notifiers(config)["slack/app"]
    try:
        with pytest.raises(PermanentError, match="invalid_auth"):
            await notifier.notify(make_notification())
    finally:
        await notifier.close()
    assert api.responses == [("chat.postMessage", 200, "invalid_auth")]


async def test_a_restarted_receiver_edits_the_message_its_predecessor_posted(
    api: SlackApiSink, tmp_path: Path, make_notification: MakeNotification
) -> None:
    """With references in the store, the edit works from a new process (or another replica)."""
    (tmp_path / "token").write_text(TOKEN)
    config = NotifiersConfig.model_validate(
        {"slack": [{"name": "app", "token_file": str(tmp_path / "token"), "channel": CHANNEL, "api_url": api.url}]}
    )
    store = open_store(f"sqlite://{tmp_path / 'refs.db'}")
    await store.open()
    try:
        for notification in (make_notification(), make_notification(kind="resolved", status="resolved")):
            notifier = build_notifiers(config)["slack/app"]  # a fresh process each time
            assert isinstance(notifier, SlackAppNotifier)
            notifier.keep_refs_in(store)
            await notifier.notify(notification)
            await notifier.close()
    finally:
        await store.close()
    (message,) = api.messages
    assert header(message.payload).startswith("RESOLVED: ")
    assert len(message.history) == 1


async def test_an_edit_that_outgrows_its_message_continues_in_replies_and_empties_them_when_it_fits_again(
    api: SlackApiSink, notifier: SlackAppNotifier, tmp_path: Path, make_notification: MakeNotification
) -> None:
    def alerts(summary: str, status: str) -> list[Notification]:
        return [
            make_notification(
                id=n, fingerprint=f"fp{n}", status=status, kind=status, annotations={"summary": summary},
                labels={"alertname": "QueueBacklog", "severity": "warning", "queue": f"Q{n:04d}Z"},
            )
            for n in range(300)
        ]  # fmt: skip

    def shown(messages: list[SlackApiMessage]) -> Counter[str]:
        return Counter(re.findall(r"Q\d{4}Z", json.dumps([m.payload["blocks"] for m in messages])))

    every = Counter(f"Q{n:04d}Z" for n in range(300))
    ts = await notifier.notify_group(GroupNotification("firing", alerts("short", "firing"), key="g"))
    assert ts is not None
    store = open_store(f"sqlite://{tmp_path / 'refs.db'}")
    await store.open()
    try:
        await store.save_message_ref("k", ts, time.time())
        grown = GroupNotification("firing", alerts("grown " * 70, "resolved"), key="g", thread=ts)
        with pytest.raises(edits.MoreReplies):  # each new reply waits for a send slot of its own
            await edits.rewrite(store, notifier, "k", grown)
        (message, reply) = api.messages
        assert (reply.thread_ts, message.history) == (ts, [])  # the message is edited once its replies exist
        first = await edits.rewrite(store, notifier, "k", grown, posts=None)
        (message, *replies) = api.messages
        assert len(replies) >= 2
        assert replies[0] is reply
        assert all(r.thread_ts == ts for r in replies)
        assert shown(api.messages) == every  # what fits in the message, the rest in replies, each alert once
        assert {part for part, _ in first.values()} == set(range(len(replies) + 1))
        assert {ref for _, ref in first.values()} == {m.ts for m in api.messages}
        assert "more alerts of this group in this message's thread" in json.dumps(message.payload)
        # Shorter again: the message holds them all, and the replies no longer show any of them.
        again = await edits.rewrite(store, notifier, "k", replace(grown, alerts=alerts("short", "resolved")), posts=0)
        assert len(api.messages) == 1 + len(replies)  # edits only
        assert shown([message]) == every
        assert shown(replies) == Counter()
        assert all(EMPTIED_WORDS in json.dumps(r.payload) for r in replies)
        assert set(again.values()) == {(0, ts)}
        # Grown once more: the same replies are edited, no new message is posted.
        await edits.rewrite(store, notifier, "k", grown, posts=0)  # every reply exists: nothing new to post
        assert len(api.messages) == 1 + len(replies)
        assert shown(api.messages) == every
    finally:
        await store.close()


async def test_messages_slack_refuses_as_too_long_are_sent_again_smaller_until_every_alert_is_shown(
    tmp_path: Path, make_notification: MakeNotification
) -> None:
    """Slack has refused blocks of about 13,000 characters in all as ``msg_blocks_too_long``, below its
    documented 40,000: the refused message is worth sending again, smaller, and no alert is lost."""
    limit = 13_000
    async with SlackApiSink(token=TOKEN, channels=(CHANNEL,), blocks_text_limit=limit) as api:
        (tmp_path / "token").write_text(TOKEN)
        config = {"name": "app", "token_file": str(tmp_path / "token"), "channel": CHANNEL, "api_url": api.url}
        notifier = build_notifiers(NotifiersConfig.model_validate({"slack": [config]}))["slack/app"]
        try:
            alerts = [
                make_notification(
                    id=n, fingerprint=f"fp{n}", labels={"alertname": "QueueBacklog", "queue": f"Q{n:04d}Z"},
                    annotations={"summary": "backlog", "runbook_url": "https://runbooks.example.com/queue"},
                )
                for n in range(500)
            ]  # fmt: skip
            rest, refused = alerts, []
            for _ in range(30):  # bounded: each round either shrinks the messages or sends one
                group = GroupNotification("firing", rest, key="g")
                part = group.but(rest[: notifier.group_fit(group)])
                try:
                    await notifier.notify_group(part)
                except TransientError as exc:
                    refused.append(str(exc))
                    continue
                rest = rest[len(part.alerts) :]
                if not rest:
                    break
            # A message shorter than a message is ever cut to is refused for good.
            api.fail_next(1, "msg_too_long")
            with pytest.raises(PermanentError, match="msg_too_long"):
                await notifier.notify(make_notification())
        finally:
            await notifier.close()
    assert rest == []
    assert 1 <= len(refused) <= 2  # each refusal halves the length of the messages
    assert all("Slack answered msg_blocks_too_long" in error for error in refused)
    shown = Counter(re.findall(r"Q\d{4}Z", json.dumps([m.payload["blocks"] for m in api.messages])))
    assert shown == Counter(f"Q{n:04d}Z" for n in range(500))  # every alert, each in one message
    sizes = [sum(len(b["text"]["text"]) for b in m.payload["blocks"]) for m in api.messages]
    assert all(size <= limit for size in sizes)
    assert [e for _, _, e in api.responses].count("msg_blocks_too_long") == len(refused)
