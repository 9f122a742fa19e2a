"""The Web API stand-in answers chat.postMessage and chat.update the way Slack documents them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from opsloop.testsupport.slack_api import UPDATES_PER_MINUTE, SlackApiSink

TOKEN = "xoxb-test-token"
CHANNEL = "C0TEST0001"


@pytest.fixture
async def api() -> AsyncIterator[SlackApiSink]:
    async with SlackApiSink(token=TOKEN, channels=(CHANNEL,)) as sink:
        yield sink


async def call(
    api: SlackApiSink, method: str, token: str | None = TOKEN, **args: Any
) -> tuple[int, dict[str, Any], str | None]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.post(api.url + method, json=args, headers=headers) as resp:
        return resp.status, await resp.json(), resp.headers.get("Retry-After")


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


async def test_post_then_update_in_place_and_reply_in_thread(api: SlackApiSink) -> None:
    status, body, _ = await call(api, "chat.postMessage", channel=CHANNEL, text="t", blocks=[section("one")])
    assert (status, body["ok"], body["channel"]) == (200, True, CHANNEL)
    ts = body["ts"]
    status, body, _ = await call(api, "chat.update", channel=CHANNEL, ts=ts, text="t2", blocks=[section("two")])
    assert (status, body["ok"], body["ts"]) == (200, True, ts)
    await asyncio.sleep(api.interval)  # the next post to the channel is in its own slot
    status, body, _ = await call(api, "chat.postMessage", channel=CHANNEL, text="progress", thread_ts=ts)
    assert body["ok"] is True
    assert len(api.messages) == 2
    edited = api.message(CHANNEL, ts)
    assert edited.payload["blocks"] == [section("two")]
    assert edited.history[0]["blocks"] == [section("one")]
    assert api.messages[1].thread_ts == ts


@pytest.mark.parametrize(
    ("token", "args", "error"),
    [
        (None, {"channel": CHANNEL, "text": "x"}, "not_authed"),
        ("xoxb-wrong", {"channel": CHANNEL, "text": "x"}, "invalid_auth"),
        (TOKEN, {"channel": "C0UNKNOWN", "text": "x"}, "channel_not_found"),
        (TOKEN, {"channel": CHANNEL, "text": "x" * 40_001}, "msg_too_long"),
        (TOKEN, {"channel": CHANNEL, "text": "x", "blocks": [section("x")] * 51}, "invalid_blocks"),
        (TOKEN, {"channel": CHANNEL, "text": "x", "blocks": [section("x" * 3001)]}, "invalid_blocks"),
        (TOKEN, {"channel": CHANNEL}, "no_text"),
    ],
)
async def test_ok_false_errors(api: SlackApiSink, token: str | None, args: dict[str, Any], error: str) -> None:
    status, body, _ = await call(api, "chat.postMessage", token=token, **args)
    assert (status, body) == (200, {"ok": False, "error": error})
    assert api.messages == []


async def test_text_at_the_documented_limit_is_accepted(api: SlackApiSink) -> None:
    assert (await call(api, "chat.postMessage", channel=CHANNEL, text="x" * 40_000))[1]["ok"] is True


async def test_update_of_an_unknown_message(api: SlackApiSink) -> None:
    _, body, _ = await call(api, "chat.update", channel=CHANNEL, ts="1.000100", text="x")
    assert body == {"ok": False, "error": "message_not_found"}


async def test_second_post_within_a_second_is_rate_limited_with_retry_after(api: SlackApiSink) -> None:
    assert (await call(api, "chat.postMessage", channel=CHANNEL, text="a"))[1]["ok"] is True
    status, body, retry_after = await call(api, "chat.postMessage", channel=CHANNEL, text="b")
    assert (status, body, retry_after) == (429, {"ok": False, "error": "ratelimited"}, "1")
    assert [m.payload["text"] for m in api.messages] == ["a"]


async def test_updates_are_limited_per_minute(api: SlackApiSink) -> None:
    ts = (await call(api, "chat.postMessage", channel=CHANNEL, text="a"))[1]["ts"]
    for n in range(UPDATES_PER_MINUTE):
        assert (await call(api, "chat.update", channel=CHANNEL, ts=ts, text=f"u{n}"))[1]["ok"] is True
    status, body, retry_after = await call(api, "chat.update", channel=CHANNEL, ts=ts, text="late")
    assert (status, body["error"]) == (429, "ratelimited")
    assert retry_after is not None
    assert 0 < int(retry_after) <= 60


async def test_programmed_failures_come_first(api: SlackApiSink) -> None:
    api.fail_next(1, "ratelimited", retry_after=7)
    api.fail_next(1, "internal_error")
    assert (await call(api, "chat.postMessage", channel=CHANNEL, text="a"))[::2] == (429, "7")
    assert (await call(api, "chat.postMessage", channel=CHANNEL, text="a"))[1]["error"] == "internal_error"
    assert (await call(api, "chat.postMessage", channel=CHANNEL, text="a"))[1]["ok"] is True
    assert [r[2] for r in api.responses] == ["ratelimited", "internal_error", "ok"]


async def test_form_encoded_arguments_with_json_blocks(api: SlackApiSink) -> None:
    form = {"token": TOKEN, "channel": CHANNEL, "text": "f", "blocks": '[{"type": "divider"}]'}
    async with aiohttp.ClientSession() as session, session.post(api.url + "chat.postMessage", data=form) as resp:
        body = await resp.json()
    assert body["ok"] is True
    assert api.messages[0].blocks == [{"type": "divider"}]


async def test_with_a_blocks_text_limit_longer_blocks_are_refused_as_too_long() -> None:
    """Off by default (the documented contract); set, it answers as chat.postMessage has been seen to."""
    async with SlackApiSink(token=TOKEN, channels=(CHANNEL,), blocks_text_limit=13_000) as limited:
        blocks = [section("x" * 3000)] * 4  # 12,000 characters
        status, body, _ = await call(limited, "chat.postMessage", channel=CHANNEL, text="t", blocks=blocks)
        assert (status, body["ok"]) == (200, True)
        await asyncio.sleep(limited.interval)
        status, body, _ = await call(
            limited, "chat.postMessage", channel=CHANNEL, text="t", blocks=[*blocks, section("y" * 1001)]
        )
        assert (status, body) == (200, {"ok": False, "error": "msg_blocks_too_long"})
        assert len(limited.messages) == 1
