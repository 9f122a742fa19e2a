"""Slack incoming webhooks: Block Kit messages kept within Slack's limits, paced to one a second.

Slack answers 200 ``ok``, 429 with ``Retry-After`` when a webhook posts faster than about one message a
second, 400/403/404/410 with a plain-text code (``invalid_payload``, ``channel_not_found``, ...) that no
retry will fix, and 5xx when it is itself in trouble. The webhook URL is a credential: it never appears
in logs or error messages.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
from opsloop.receiver.domain import notifier_key
from opsloop.receiver.notify.base import KIND_TITLES, Notification, Pace, PermanentError, TransientError
from opsloop.receiver.notify.config import SlackConfig
from opsloop.receiver.notify.group import (
    EMPTIED_WORDS,
    FULL_ALERTS,
    REPEAT_WORDS,
    GroupNotification,
    counts,
    more_words,
    mrkdwn_line,
    subject,
)
from opsloop.receiver.notify.render import MessageTemplate, load_template, load_templates, mrkdwn_escape
from prometheus_client import Counter

HEADER_LIMIT = 150
SECTION_LIMIT = 3000
MAX_BLOCKS = 50
FALLBACK_LIMIT = 3000
ELLIPSIS = "…"
TRUNCATED_NOTE = "_… message truncated_"
MESSAGE_BUDGET = 40_000
"""Characters of text in one message, all blocks together: Slack's documented limit for a message's text."""
SMALLEST_BUDGET = 4_000
"""The least a message is cut to after Slack refused longer ones (the length Slack recommends for a message)."""
TOO_LONG = frozenset({"msg_too_long", "msg_blocks_too_long"})
"""Slack's answers to a message longer than it takes. Beyond its documented limits, chat.postMessage has
been seen to refuse blocks whose text adds up to about 12,000-13,000 characters (``msg_blocks_too_long``):
after such an answer the notifier keeps its messages within half the refused one's text and sends again,
so a large group goes out in more, smaller messages instead of failing."""
FULL_SECTIONS = 4
"""Sections one alert shown in full may take in a group message."""
FOOTER_RESERVE = 600
"""Characters kept for a group message's last section ("… and N more", with a link when it fits)."""


class Pacer:
    """Keeps the sends to one webhook URL at least ``interval`` seconds apart.

    Notifiers sharing a URL share a Pacer. Each send reserves the next free slot synchronously, so
    concurrent senders on one event loop queue up without a lock. A 429 pushes the next slot back.
    """

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._next = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)

    def defer(self, seconds: float) -> None:
        self._next = max(self._next, time.monotonic() + seconds)


def truncate(text: str, limit: int, *, mrkdwn: bool = True) -> str:
    """At most ``limit`` characters, ending in an ellipsis when cut; in mrkdwn never inside
    an ``&amp;``-style escape or a ``<link|text>``, which Slack would reject or show broken."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    if mrkdwn:
        for opener, closer in (("&", ";"), ("<", ">")):
            start = cut.rfind(opener)
            if start != -1 and closer not in cut[start:]:
                cut = cut[:start]
    return cut + ELLIPSIS


def sections(body: str, limit: int = SECTION_LIMIT, most: int = MAX_BLOCKS - 1) -> list[str]:
    """Split mrkdwn at line breaks into at most ``most`` non-empty chunks of at most ``limit`` chars."""
    chunks: list[str] = []
    current = ""
    for raw in body.splitlines():
        line = truncate(raw, limit)
        joined = f"{current}\n{line}" if current else line
        if len(joined) <= limit:
            current = joined
            continue
        chunks.append(current)
        current = line
    chunks.append(current)
    chunks = [c.strip("\n") for c in chunks if c.strip()]
    if len(chunks) > most:
        chunks = chunks[:most]
        chunks[-1] = truncate(chunks[-1], limit - len(TRUNCATED_NOTE) - 1) + "\n" + TRUNCATED_NOTE
    return chunks


def within(texts: list[str], budget: int) -> list[str]:
    """The first ``texts`` (at least one) whose characters, a newline after each, fit ``budget``; when
    some are left out, the last one kept ends by saying the message was cut."""
    kept: list[str] = []
    size = 0
    for text in texts:
        size += len(text) + 1
        if kept and size > budget:
            room = max(budget - sum(len(t) + 1 for t in kept[:-1]) - len(TRUNCATED_NOTE) - 2, 1)
            kept[-1] = truncate(kept[-1], min(room, SECTION_LIMIT - len(TRUNCATED_NOTE) - 1)) + "\n" + TRUNCATED_NOTE
            break
        kept.append(text)
    return kept


def blocks_text(payload: dict[str, Any]) -> int:
    """The characters of text in a message's blocks, all together."""
    return sum(len(b.get("text", {}).get("text", "")) for b in payload.get("blocks", []))


def retry_after_seconds(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


def describe(exc: BaseException) -> str:
    """Name a transport failure without its text, which for some aiohttp errors contains the URL."""
    return "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__


class BlockMessage:
    """Renders a notification as Slack Block Kit (header + mrkdwn sections) within Slack's limits."""

    def __init__(self, title: MessageTemplate, body: MessageTemplate) -> None:
        self._title = title
        self._body = body
        self.budget = MESSAGE_BUDGET
        """Characters of text a message may hold; lowered when Slack refuses a message as too long."""
        self._last: tuple[GroupNotification, int, tuple[dict[str, Any], int]] | None = None
        self._pieces: list[tuple[Notification, list[str]]] = []

    @classmethod
    def from_config(
        cls, config: SlackConfig, templates_dir: Path | None = None, failures: Counter | None = None
    ) -> BlockMessage:
        load = partial(
            load_template, notifier_key("slack", config.name), templates_dir=templates_dir, failures=failures
        )
        return cls(
            **load_templates(
                title=partial(load, "title", "text", default="title.txt.j2", path=config.templates.title),
                body=partial(load, "text", "mrkdwn", default="slack.md.j2", path=config.templates.text),
            )
        )

    def render(self, n: Notification) -> dict[str, Any]:
        """``text`` (the notification fallback) and ``blocks``."""
        title = f"{KIND_TITLES[n.kind]}: {self._title.render(n)}"
        header = truncate(title, HEADER_LIMIT, mrkdwn=False)
        blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": header}}]
        texts = within(sections(self._body.render(n)), self.budget - len(header))
        blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": s}} for s in texts]
        return {"text": truncate(mrkdwn_escape(title), FALLBACK_LIMIT), "blocks": blocks}

    def render_group(self, group: GroupNotification) -> tuple[dict[str, Any], int]:
        """The message for as many of the group's alerts (from the first) as Slack's limits allow (at least
        one), and how many that is: 50 blocks, 3000 characters a section, ``MESSAGE_BUDGET`` in all.

        The last group rendered is kept (by identity; a group is immutable): a message is previewed for
        the timeline and then posted, and a thousand-alert group costs milliseconds to render. Callers
        copy the message before they change it. So are the texts of the alerts it looked at
        (``_piece``): the message of a group's first alerts, rendered after the whole group was fitted,
        renders none of them again."""
        last, budget = self._last, self.budget
        if last is not None and last[0] is group and last[1] == budget:
            return last[2]
        rendered = self._render_group(group, budget)
        self._last = (group, budget, rendered)
        return rendered

    def render_all(self, name: str, group: GroupNotification) -> dict[str, Any]:
        """The message to send about every alert of ``group``: it was fitted to hold them all, but Slack may
        have refused a message since and lowered the length (``too_long``). Then it is sent again, fitted
        anew (TransientError), since the alerts it no longer holds would be recorded as sent in it."""
        message, fitted = self.render_group(group)
        if fitted < len(group.alerts):
            raise TransientError(f"{name}: the message holds {fitted} of its {len(group.alerts)} alerts since "
                                 f"messages were shortened to {self.budget} characters: fitted again")  # fmt: skip
        return message

    def too_long(self, name: str, error: str, payload: dict[str, Any]) -> Exception:
        """Slack refused ``payload`` as too long (``TOO_LONG``): from now on messages hold at most half its
        text, and it is worth sending again (TransientError), unless it was as short as a message is cut to
        (PermanentError)."""
        size = blocks_text(payload)
        if size <= SMALLEST_BUDGET:
            return PermanentError(f"{name}: Slack answered {error} for a message of {size} characters")
        self.budget = max(SMALLEST_BUDGET, min(self.budget, size // 2))
        return TransientError(f"{name}: Slack answered {error} for {size} characters; messages now hold {self.budget}")

    def _render_group(self, group: GroupNotification, budget: int) -> tuple[dict[str, Any], int]:
        if not group.alerts:  # a reply continuing an edited message that holds every alert again
            section = {"type": "section", "text": {"type": "mrkdwn", "text": EMPTIED_WORDS}}
            return {"text": EMPTIED_WORDS, "blocks": [section]}, 0
        title = truncate(subject(group), HEADER_LIMIT, mrkdwn=False)
        repeat = f"\n_{REPEAT_WORDS}_" if group.maybe_repeat else ""
        # Label values are any length: the counts of many or long severities are cut to one section.
        intro = truncate(mrkdwn_escape(counts(group)), SECTION_LIMIT - len(repeat)) + repeat
        texts: list[str] = [intro]
        size = len(title) + len(intro) + 1  # the characters of the message, a newline after each text
        fitted = 0
        known, seen = self._pieces, []
        for index, n in enumerate(group.alerts):
            piece = self._piece(index, n, known)
            seen.append((n, piece))
            if not fitted and size + sum(len(t) + 1 for t in piece) + FOOTER_RESERVE > budget:
                # The first alert always goes in: when its full text is too long, as its one line (name,
                # labels, summary, links), which says which alert it is; a cut full text might not.
                piece = [truncate(mrkdwn_line(n), SECTION_LIMIT)]
            # A compact line joins the section before it when it fits there (not the full alerts' sections).
            joins = index > FULL_ALERTS and len(texts[-1]) + 1 + len(piece[0]) <= SECTION_LIMIT
            blocks = len(texts) + (0 if joins else len(piece))
            grown = size + sum(len(t) + 1 for t in piece)  # a joined line adds its newline, a section its own
            if fitted and (blocks + 2 > MAX_BLOCKS or grown + FOOTER_RESERVE > budget):
                break
            if joins:
                texts[-1] = f"{texts[-1]}\n{piece[0]}"
            else:
                texts += piece
            size, fitted = grown, fitted + 1
        self._pieces = seen
        more = len(group.alerts) - fitted + group.more
        if more:
            footer = mrkdwn_escape(more_words(group.but(group.alerts[:fitted])))
            link = f" <{mrkdwn_escape(group.link)}|All alerts>"
            if group.link.startswith(("http://", "https://")) and len(footer) + len(link) <= FOOTER_RESERVE:
                footer += link  # a link cut short would lead nowhere: a longer one is left out
            texts.append(footer)
        blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": title}}]
        blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": t}} for t in texts]
        return {"text": truncate(mrkdwn_escape(title), FALLBACK_LIMIT), "blocks": blocks}, fitted

    def _piece(self, index: int, n: Notification, known: list[tuple[Notification, list[str]]]) -> list[str]:
        """The texts alert ``n`` adds at ``index``: its sections in full (the first alerts), else one compact
        line; taken from ``known`` when the last group rendered had this very alert there."""
        if index < len(known) and known[index][0] is n:
            return known[index][1]
        if index < FULL_ALERTS:
            return sections(self._body.render(n), most=FULL_SECTIONS)
        return [truncate(mrkdwn_line(n), SECTION_LIMIT)]


class SlackNotifier:
    """Posts one Block Kit message per notification to one incoming webhook."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        message: BlockMessage,
        pacer: Pacer,
        timeout: float = 10.0,
        channel: str | None = None,
        username: str | None = None,
    ) -> None:
        self.name = notifier_key("slack", name)
        self.pace = Pace(f"slack-webhook:{hashlib.sha256(url.encode()).hexdigest()[:24]}", pacer.interval)
        self.edits = False
        self._url = url
        self._message = message
        self._pacer = pacer
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._overrides = {k: v for k, v in (("channel", channel), ("username", username)) if v}
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_config(
        cls, config: SlackConfig, pacer: Pacer, templates_dir: Path | None = None, failures: Counter | None = None
    ) -> SlackNotifier:
        return cls(
            config.name,
            config.resolve_url(),
            message=BlockMessage.from_config(config, templates_dir, failures),
            pacer=pacer,
            timeout=config.timeout,
            channel=config.channel,
            username=config.username,
        )

    def payload(self, n: Notification) -> dict[str, Any]:
        """The webhook JSON: a header, mrkdwn sections and a short ``text`` for notifications."""
        return {**self._message.render(n), **self._overrides}

    def preview(self, notification: Notification) -> str:
        return json.dumps(self.payload(notification), indent=1, ensure_ascii=False)

    def group_fit(self, group: GroupNotification) -> int:
        return self._message.render_group(group)[1]

    def preview_group(self, group: GroupNotification) -> str:
        return json.dumps(self._message.render_group(group)[0], indent=1, ensure_ascii=False)

    async def notify_group(self, group: GroupNotification) -> str | None:
        await self._post({**self._message.render_all(self.name, group), **self._overrides})
        return None

    async def notify(self, notification: Notification) -> None:
        await self._post(self.payload(notification))

    async def _post(self, payload: dict[str, Any]) -> None:
        await self._pacer.wait()
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(self._url, json=payload) as resp:
                status, answer = resp.status, (await resp.text())[:200]
                retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"{self.name}: {describe(exc)}") from None
        answer = " ".join(answer.split())
        if 200 <= status < 300:
            return
        if status == 429:
            self._pacer.defer(retry_after if retry_after is not None else self._pacer.interval)
            raise TransientError(f"{self.name}: rate limited (429 {answer})", retry_after=retry_after)
        if status >= 500:
            raise TransientError(f"{self.name}: Slack answered {status} {answer}")
        if answer in TOO_LONG or answer == "invalid_blocks":
            # A webhook says invalid_blocks for any block it refuses. The message keeps to every documented
            # limit, so a long one was most likely refused for its length: it is sent again, shorter.
            raise self._message.too_long(self.name, answer, payload)
        raise PermanentError(f"{self.name}: Slack answered {status} {answer}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
