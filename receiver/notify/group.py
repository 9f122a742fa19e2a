"""One message about a group of alerts: counts, the most important alerts in full, then one line per alert.

A group is the alerts of one Alertmanager group (``groupKey``) queued for one notifier within its route's
``group_window``. Alerts are ordered by importance (critical, warning, info, other; then the oldest
first), so the alerts shown in full, and those a first message holds when a group needs several, are the
ones that matter most. Every value printed comes from the alert and is escaped for the flavour it is
printed in (mrkdwn, HTML); only http(s) URLs become links.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from opsloop.receiver.notify.base import Notification
from opsloop.receiver.notify.render import glance, links, mrkdwn_escape

SEVERITY_ORDER = ("critical", "warning", "info")
FULL_ALERTS = 3
"""Alerts shown in full at the top of a group message (the most important ones)."""
LINE_LIMIT = 400
"""Characters of one alert's line in the compact list."""
CLASS_TITLES = {"firing": "FIRING", "resolved": "RESOLVED", "skipped": "AUTOMATION DID NOT RUN"}
HIDDEN_LABELS = ("alertname", "severity")
"""Labels a compact line leaves out: the alert name leads the line and the severity shows as its mark."""
REPEAT_WORDS = "This may repeat a message sent just before the receiver restarted."
EMPTIED_WORDS = "The alerts this reply showed are all shown in the messages above it now."
"""A reply that continued an edited message, once that message holds its alerts again."""


@dataclass(frozen=True)
class GroupNotification:
    """One message about several alerts of one group, all of one class (firing, resolved or skipped)."""

    klass: str
    alerts: Sequence[Notification]
    """Most important first (``importance``); every alert this message is about."""
    more: int = 0
    """Alerts of the group that did not fit and follow in the next message."""
    link: str = ""
    """Where every alert of the group is listed (the console, or Alertmanager)."""
    maybe_repeat: bool = False
    thread: str | None = None
    """The group's first message (an email Message-ID), to thread this one under."""
    key: str = ""
    """The group's identity, for stable message ids."""
    message: int = 0
    """This message's own number (the id of the delivery that carried it)."""
    edit: str | None = None
    """A message to change in place instead of sending a new one (a Slack ``ts`` in app mode)."""
    part: int = 0
    """0: a message of its own; above 0: the part-th reply continuing an edited message (``thread``) whose
    alerts no longer fit in it."""

    @property
    def title(self) -> str:
        return CLASS_TITLES.get(self.klass, self.klass.upper())

    def but(self, alerts: Sequence[Notification]) -> GroupNotification:
        """The message for the first alerts only; the others follow in the next message."""
        return replace(self, alerts=alerts, more=len(self.alerts) - len(alerts) + self.more)

    def pages(self, fit: Callable[[GroupNotification], int]) -> list[GroupNotification]:
        """The alerts split into consecutive messages, each holding as many as ``fit`` says one holds (at least
        one), each saying how many follow it: an edit re-rendering a message that no longer holds them all."""
        pages: list[GroupNotification] = []
        rest = list(self.alerts)
        while rest:
            size = max(1, min(fit(replace(self, alerts=rest)), len(rest)))
            pages.append(replace(self, alerts=rest[:size], more=len(rest) - size))
            rest = rest[size:]
        return pages


def rank(severity: str) -> int:
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else len(SEVERITY_ORDER)


def importance(n: Notification) -> tuple[int, int, str, str]:
    severity = n.incident.labels.get("severity", "")
    return rank(severity), 0 if n.incident.status == "firing" else 1, n.incident.starts_at, n.incident.fingerprint


def names(group: GroupNotification) -> str:
    """The alert names of the group, most frequent first: ``QueueBacklog`` or ``QueueBacklog, DiskFull, …``."""
    counted = Counter(n.incident.alertname for n in group.alerts)
    top = [name for name, _ in counted.most_common(3)]
    return ", ".join(top) + (", …" if len(counted) > 3 else "")


def subject(group: GroupNotification) -> str:
    """One line: ``FIRING: 500 alerts · QueueBacklog``."""
    return f"{group.title}: {len(group.alerts)} alerts · {names(group)}"


def counts(group: GroupNotification) -> str:
    """Counts by status and severity: ``500 firing · 3 critical, 497 warning``."""
    status = Counter(n.status for n in group.alerts)
    severity = Counter(n.incident.labels.get("severity") or "no severity" for n in group.alerts)
    by_status = ", ".join(f"{count} {name}" for name, count in sorted(status.items()))
    ranked = sorted(severity.items(), key=lambda kv: rank(kv[0]))
    said = f"{by_status} · " + ", ".join(f"{count} {name}" for name, count in ranked)
    truncated = max(n.incident.truncated_alerts for n in group.alerts)
    return said + (f" · Alertmanager left {truncated} more alerts out of its webhook" if truncated > 0 else "")


def more_words(group: GroupNotification) -> str:
    """Where the alerts that did not fit are: the next message, or replies continuing an edited message."""
    if not group.more:
        return ""
    where = "the next message"
    if group.part or group.edit:
        where = "the next reply in this thread" if group.part else "this message's thread"
    return f"… and {group.more} more alerts of this group in {where}"


def line_facts(n: Notification) -> tuple[str, str, str]:
    """(alert name, labels, what to say) of one alert's compact line, unescaped."""
    shown = ", ".join(f"{k}={v}" for k, v in sorted(n.incident.labels.items()) if k not in HIDDEN_LABELS)
    said = [n.incident.annotations.get("summary", ""), n.note or (n.automation[0] if n.automation else "")]
    return n.incident.alertname, shown, " · ".join(s for s in said if s)


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mrkdwn_line(n: Notification) -> str:
    name, shown, said = line_facts(n)
    text = cut(f"{shown} — {said}" if said else shown, LINE_LIMIT)
    tail = "".join(f" · <{mrkdwn_escape(url)}|{title}>" for title, url in links(n))
    return f"{glance(n)['emoji']} *{mrkdwn_escape(name)}* {mrkdwn_escape(text)}{tail}"


def text_line(n: Notification) -> str:
    name, shown, said = line_facts(n)
    text = cut(f"{shown} — {said}" if said else shown, LINE_LIMIT)
    tail = "".join(f" · {title}: {url}" for title, url in links(n))
    return f"- [{glance(n)['words']}] {name} {text}{tail}"


def html_line(n: Notification) -> str:
    name, shown, said = line_facts(n)
    text = cut(f"{shown} — {said}" if said else shown, LINE_LIMIT)
    tail = "".join(f' · <a href="{html.escape(url)}">{html.escape(title)}</a>' for title, url in links(n))
    color = glance(n)["color"]
    return (
        f'<li><span style="color: {color}; font-weight: bold;">{html.escape(glance(n)["words"])}</span> '
        f"<strong>{html.escape(name)}</strong> {html.escape(text)}{tail}</li>"
    )


def text_body(group: GroupNotification, full: Callable[[Notification], str]) -> str:
    """The plain-text message: counts, the first alerts in full (``full`` renders one), one line for each other."""
    parts = [subject(group), counts(group)]
    if group.maybe_repeat:
        parts.append(REPEAT_WORDS)
    parts += [f"\n{full(n)}" for n in group.alerts[:FULL_ALERTS]]
    if group.alerts[FULL_ALERTS:]:
        parts.append("\nOther alerts of the group:")
        parts += [text_line(n) for n in group.alerts[FULL_ALERTS:]]
    if group.more:
        parts.append(f"\n{more_words(group)}" + (f": {group.link}" if group.link else "."))
    elif group.link:
        parts.append(f"\nAll alerts: {group.link}")
    return "\n".join(parts)


def html_body(group: GroupNotification, full: Callable[[Notification], str]) -> str:
    """The HTML message: a band in the colour of the most severe alert, then what ``text_body`` says."""
    color = glance(group.alerts[0])["color"]
    parts = [
        '<!DOCTYPE html>\n<html>\n<body style="font-family: sans-serif; font-size: 14px;">',
        f'<div style="background: {color}; color: #ffffff; padding: 8px 12px; font-weight: bold;">'
        f"{html.escape(subject(group))}</div>",
        f"<p><strong>{html.escape(counts(group))}</strong></p>",
    ]
    if group.maybe_repeat:
        parts.append(f"<p><em>{REPEAT_WORDS}</em></p>")
    parts += [f'<pre style="white-space: pre-wrap;">{html.escape(full(n))}</pre>' for n in group.alerts[:FULL_ALERTS]]
    if group.alerts[FULL_ALERTS:]:
        parts.append("<p>Other alerts of the group:</p>\n<ul>")
        parts += [html_line(n) for n in group.alerts[FULL_ALERTS:]]
        parts.append("</ul>")
    link = (
        f' <a href="{html.escape(group.link)}">All alerts</a>' if group.link.startswith(("http://", "https://")) else ""
    )
    if group.more:
        parts.append(f"<p>{html.escape(more_words(group))}.{link}</p>")
    elif link:
        parts.append(f"<p>{link}</p>")
    parts.append("</body>\n</html>")
    return "\n".join(parts)
