"""Slack app mode: a bot token posts with ``chat.postMessage`` and edits that message with ``chat.update``.

The first message about an alert is posted to the channel; when the alert resolves or its plan recovers
it, that same message is edited in place, and plan progress (escalations, skipped or paused automation)
goes into its thread, so a channel shows one message per alert instead of a stream.

Slack's Web API answers HTTP 200 with ``{"ok": false, "error": ...}`` for most failures: ``ratelimited``
(HTTP 429 with ``Retry-After``) and Slack's own transient errors are retried; ``invalid_auth``,
``channel_not_found`` and the like are permanent; ``msg_too_long`` and ``msg_blocks_too_long`` are sent
again within less text (``slack.TOO_LONG``), unless the message was already short. An edit of a message Slack no longer
has (``message_not_found``, ``cant_update_message``, ``edit_window_closed``) posts a new one instead.

Which message belongs to which alert is remembered by ``MessageRefs``: in the receiver's store once it
is open (shared by replicas, kept across restarts); without a reference the notifier posts instead.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from opsloop.receiver.domain import notifier_key
from opsloop.receiver.notify.base import Notification, Pace, PermanentError, TransientError
from opsloop.receiver.notify.config import SlackConfig
from opsloop.receiver.notify.group import GroupNotification
from opsloop.receiver.notify.slack import TOO_LONG, BlockMessage, Pacer, describe, retry_after_seconds
from prometheus_client import Counter

TRANSIENT = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"})
"""Slack's errors that a later attempt can fix; any other ``ok: false`` error is permanent."""
GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
"""chat.update errors meaning the message cannot be edited: post a new one instead."""
EDITS = frozenset({"resolved", "recovered"})
"""Kinds that change the alert's own message in place."""


class MessageRefs(Protocol):
    """Where the message of each alert (``thread_key``) is: its ``ts`` in the channel."""

    async def get(self, key: str) -> str | None: ...

    async def put(self, key: str, ts: str) -> None: ...


class MemoryRefs:
    """Message references held by this process: edits work until it restarts."""

    def __init__(self) -> None:
        self._refs: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self._refs.get(key)

    async def put(self, key: str, ts: str) -> None:
        self._refs[key] = ts


class RefStore(Protocol):
    async def message_ref(self, key: str) -> str | None: ...

    async def save_message_ref(self, key: str, ref: str, now: float) -> None: ...


class StoreRefs:
    """Message references in the receiver's store: shared by replicas, kept across restarts."""

    def __init__(self, store: RefStore, notifier: str) -> None:
        self._store = store
        self._prefix = f"{notifier}|"

    async def get(self, key: str) -> str | None:
        return await self._store.message_ref(self._prefix + key)

    async def put(self, key: str, ts: str) -> None:
        await self._store.save_message_ref(self._prefix + key, ts, time.time())


class SlackApiError(Exception):
    """An ``ok: false`` answer, kept apart so chat.update can fall back to posting."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class SlackAppNotifier:
    """Posts, edits and threads messages in one channel with a bot token."""

    def __init__(
        self, name: str, token: str, channel: str, *, message: BlockMessage, pacer: Pacer, refs: MessageRefs,
        api_url: str = "https://slack.com/api/", timeout: float = 10.0, username: str | None = None,
    ) -> None:  # fmt: skip
        self.name = notifier_key("slack", name)
        self.pace = Pace(f"slack-channel:{api_url}#{channel}", pacer.interval)
        self.edits = True
        self._token = token
        self._channel = channel
        self._message = message
        self._pacer = pacer
        self._refs = refs
        self._api_url = api_url
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._username = username
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_config(
        cls, config: SlackConfig, pacer: Pacer, refs: MessageRefs, templates_dir: Path | None = None,
        failures: Counter | None = None,
    ) -> SlackAppNotifier:  # fmt: skip
        if config.channel is None:
            raise ValueError("app mode needs a channel id")
        return cls(
            config.name, config.resolve_token(), config.channel,
            message=BlockMessage.from_config(config, templates_dir, failures), pacer=pacer, refs=refs,
            api_url=config.api_url, timeout=config.timeout, username=config.username,
        )  # fmt: skip

    def keep_refs_in(self, store: RefStore) -> None:
        """Remember messages in the store from now on (it opens after the notifiers are built)."""
        self._refs = StoreRefs(store, self.name)

    def _payload(self, message: dict[str, Any]) -> dict[str, Any]:
        payload: dict[str, Any] = {"channel": self._channel, **message}
        if self._username:
            payload["username"] = self._username
        return payload

    def group_fit(self, group: GroupNotification) -> int:
        return self._message.render_group(group)[1]

    def preview_group(self, group: GroupNotification) -> str:
        return json.dumps(self._message.render_group(group)[0], indent=1, ensure_ascii=False)

    async def notify_group(self, group: GroupNotification) -> str | None:
        """Post the group's message, or change ``group.edit`` in place; plans that did not run (``skipped``)
        and the parts continuing an edited message (``part``) reply in the thread of ``group.thread``.
        Returns the ``ts`` of the message that now shows these alerts (None for a ``skipped`` reply)."""
        payload = self._payload(self._message.render_all(self.name, group))
        if group.edit is not None:
            try:
                await self._call("chat.update", {**payload, "ts": group.edit})
                return group.edit
            except SlackApiError as exc:
                if exc.error not in GONE:
                    raise self._classify(exc, payload) from None
        replies = group.part > 0 or group.klass == "skipped"
        if replies and group.thread is not None:
            payload["thread_ts"] = group.thread
        await self._pacer.wait()
        try:
            answer = await self._call("chat.postMessage", payload)
        except SlackApiError as exc:
            raise self._classify(exc, payload) from None
        ts = answer.get("ts")
        return ts if isinstance(ts, str) and (group.part > 0 or "thread_ts" not in payload) else None

    async def notify(self, notification: Notification) -> None:
        payload = self._payload(self._message.render(notification))
        parent = await self._refs.get(notification.incident.thread_key)
        if parent is not None and notification.kind in EDITS:
            try:
                await self._call("chat.update", {**payload, "ts": parent})
                return
            except SlackApiError as exc:
                if exc.error not in GONE:
                    raise self._classify(exc, payload) from None
        elif parent is not None:  # progress of the same alert: a plan note, escalation, a repeat
            payload |= {"thread_ts": parent, "reply_broadcast": notification.kind == "escalation"}
        await self._pacer.wait()  # one new message a second per channel
        try:
            answer = await self._call("chat.postMessage", payload)
        except SlackApiError as exc:
            raise self._classify(exc, payload) from None
        if "thread_ts" not in payload and isinstance(answer.get("ts"), str):
            await self._refs.put(notification.incident.thread_key, answer["ts"])

    async def _call(self, method: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One Web API call; SlackApiError for ``ok: false``, TransientError for transport trouble."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            async with self._session.post(self._api_url + method, json=payload, headers=headers) as resp:
                status = resp.status
                retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
                answer = await resp.json(content_type=None) if status < 500 else None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise TransientError(f"{self.name}: {method}: {describe(exc)}") from None
        if status == 429:
            self._pacer.defer(retry_after if retry_after is not None else self._pacer.interval)
            raise TransientError(f"{self.name}: {method}: rate limited (429)", retry_after=retry_after)
        if status >= 500 or not isinstance(answer, dict):
            raise TransientError(f"{self.name}: {method}: Slack answered {status}")
        if answer.get("ok") is not True:
            raise SlackApiError(str(answer.get("error") or "unknown_error")[:100])
        return answer

    def _classify(self, exc: SlackApiError, payload: dict[str, Any]) -> Exception:
        if exc.error in TRANSIENT:
            return TransientError(f"{self.name}: Slack answered {exc.error}")
        if exc.error in TOO_LONG:
            return self._message.too_long(self.name, exc.error, payload)
        return PermanentError(f"{self.name}: Slack answered {exc.error}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
