"""A local stand-in for Slack's Web API methods ``chat.postMessage`` and ``chat.update``.

It speaks the contract a bot-token client relies on (https://docs.slack.dev/reference/methods/chat.postMessage,
https://docs.slack.dev/reference/methods/chat.update, https://docs.slack.dev/apis/web-api/): a bearer
token in ``Authorization``, JSON or form-encoded arguments, HTTP 200 with ``{"ok": true, ...}`` or
``{"ok": false, "error": "..."}``; ``not_authed``/``invalid_auth`` for a missing or wrong token,
``channel_not_found`` for a channel it does not know, ``message_not_found`` when updating an unknown
``ts``, ``msg_too_long`` and ``invalid_blocks`` per ``slack_limits``, and HTTP 429 with ``Retry-After``
and ``ratelimited`` when a channel gets more than one new message a second (chat.update: more than 50
a minute, its tier 3). Tests can program the next answers with ``fail_next``. With ``blocks_text_limit``
it also answers ``msg_blocks_too_long`` when the text of a message's blocks adds up to more than that:
not documented, but what chat.postMessage has been reported to do at about 12,000-13,000 characters
(slackapi/bolt-js#2509, #2867), well below the documented 40,000.

Every accepted post is kept with its ``ts`` and thread, and every update replaces the message's current
payload while keeping its history, so a test can count messages and blocks and see edits in place.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from opsloop.testsupport.servers import LOOPBACK
from opsloop.testsupport.sinks import HttpStandIn, Inbox
from opsloop.testsupport.slack_limits import POST_INTERVAL, RATE_TOLERANCE, payload_error

UPDATES_PER_MINUTE = 50
"""chat.update is a tier 3 method: 50+ calls a minute (https://docs.slack.dev/apis/web-api/rate-limits)."""
MESSAGE_FIELDS = ("text", "blocks", "attachments")


@dataclass
class SlackApiMessage:
    """One message as the channel shows it: its latest payload and every earlier version."""

    channel: str
    ts: str
    thread_ts: str | None
    payload: dict[str, Any]
    posted_at: float  # time.monotonic()
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def blocks(self) -> list[dict[str, Any]]:
        return [
            *self.payload.get("blocks", []),
            *(b for a in self.payload.get("attachments", []) for b in a.get("blocks", [])),
        ]


def _arguments(body: bytes, content_type: str) -> dict[str, Any] | None:
    """The method's arguments: a JSON object, or a form whose ``blocks``/``attachments`` are JSON strings."""
    try:
        if content_type.startswith("application/json"):
            args = json.loads(body)
            return args if isinstance(args, dict) else None
        args = dict(parse_qsl(body.decode(), keep_blank_values=True))
        for key in ("blocks", "attachments"):
            if key in args:
                args[key] = json.loads(args[key])
        return args
    except (ValueError, UnicodeDecodeError):
        return None


class SlackApiSink(HttpStandIn):
    """``chat.postMessage`` and ``chat.update`` for one workspace with one bot token and known channels."""

    def __init__(
        self,
        *,
        token: str = "xoxb-opsloop-test",
        channels: tuple[str, ...] = ("C0OPSLOOP1",),
        interval: float = POST_INTERVAL,
        port: int | None = None,
        on_message: Callable[[SlackApiMessage], None] | None = None,
        blocks_text_limit: int | None = None,
    ) -> None:
        super().__init__(port)
        self.token = token
        self.blocks_text_limit = blocks_text_limit
        self.channels = set(channels)
        self.interval = interval
        self.posts: Inbox[SlackApiMessage] = Inbox(on_message)
        self.updates: Inbox[SlackApiMessage] = Inbox()
        self.responses: list[tuple[str, int, str]] = []
        """(method, HTTP status, "ok" or the error code) of every request, in order."""
        self._failures: deque[tuple[str, float | None]] = deque()
        self._last_post: dict[str, float] = {}
        self._update_times: deque[float] = deque()
        self._ts = itertools.count(1)

    @property
    def url(self) -> str:
        """The API base URL, as ``https://slack.com/api/`` is for the real service."""
        return f"http://{LOOPBACK}:{self.port}/api/"

    @property
    def messages(self) -> list[SlackApiMessage]:
        return self.posts.items

    def message(self, channel: str, ts: str) -> SlackApiMessage:
        return next(m for m in self.posts.items if m.channel == channel and m.ts == ts)

    def fail_next(self, count: int, error: str, retry_after: float | None = None) -> None:
        """Answer the next ``count`` calls with ``ok: false`` and ``error``; ``ratelimited`` comes as a 429."""
        self._failures.extend([(error, retry_after)] * count)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/{method}", self._handle)

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        response, error = self._answer(method, request.headers.get("Authorization", ""), await request.read(),
                                       request.content_type)  # fmt: skip
        self.responses.append((method, response.status, error or "ok"))
        return response

    def _answer(self, method: str, auth: str, body: bytes, content_type: str) -> tuple[web.Response, str | None]:
        if method not in ("chat.postMessage", "chat.update"):
            return web.json_response({"ok": False, "error": "unknown_method"}, status=404), "unknown_method"
        if self._failures:
            error, retry_after = self._failures.popleft()
            return self._error(error, retry_after)
        args = _arguments(body, content_type)
        if args is None:
            return self._error("invalid_json" if content_type.startswith("application/json") else "invalid_form_data")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else args.get("token")
        if not token:
            return self._error("not_authed")
        if token != self.token:
            return self._error("invalid_auth")
        channel = args.get("channel")
        if channel not in self.channels:
            return self._error("channel_not_found")
        payload = {k: args[k] for k in MESSAGE_FIELDS if k in args}
        if error := payload_error(payload, web_api=True):
            return self._error(error)
        if self.blocks_text_limit is not None:
            text = sum(len(b.get("text", {}).get("text", "")) for b in payload.get("blocks", []))
            if text > self.blocks_text_limit:
                return self._error("msg_blocks_too_long")
        now = time.monotonic()
        if method == "chat.postMessage":
            return self._post(channel, args.get("thread_ts"), payload, now)
        return self._update(channel, args.get("ts"), payload, now)

    def _post(
        self, channel: str, thread_ts: str | None, payload: dict[str, Any], now: float
    ) -> tuple[web.Response, str | None]:
        wait = self._last_post.get(channel, -math.inf) + self.interval * RATE_TOLERANCE - now
        if wait > 0:
            return self._error("ratelimited", math.ceil(wait))
        self._last_post[channel] = now
        message = SlackApiMessage(channel, f"{1_700_000_000 + next(self._ts)}.000100", thread_ts, payload, now)
        self.posts.add(message)
        return web.json_response({"ok": True, "channel": channel, "ts": message.ts, "message": payload}), None

    def _update(
        self, channel: str, ts: str | None, payload: dict[str, Any], now: float
    ) -> tuple[web.Response, str | None]:
        while self._update_times and self._update_times[0] <= now - 60:
            self._update_times.popleft()
        if len(self._update_times) >= UPDATES_PER_MINUTE:
            return self._error("ratelimited", math.ceil(self._update_times[0] + 60 - now))
        message = next((m for m in self.posts.items if m.channel == channel and m.ts == ts), None)
        if message is None:
            return self._error("message_not_found")
        self._update_times.append(now)
        message.history.append(message.payload)
        message.payload = payload
        self.updates.add(message)
        body = {"ok": True, "channel": channel, "ts": message.ts, "text": payload.get("text", ""), "message": payload}
        return web.json_response(body), None

    @staticmethod
    def _error(error: str, retry_after: float | None = None) -> tuple[web.Response, str | None]:
        if error == "ratelimited":
            headers = {"Retry-After": f"{retry_after if retry_after is not None else 1:g}"}
            return web.json_response({"ok": False, "error": error}, status=429, headers=headers), error
        return web.json_response({"ok": False, "error": error}), error
