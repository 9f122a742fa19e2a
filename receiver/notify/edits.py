"""Editing a group message in place (Slack app mode) when its alerts resolve, without dropping any.

An edit re-renders the message with its alerts as they are now. Resolved alerts may need more room than
they did firing (a longer summary, what automation did), so a message that held its alerts when posted
may not hold them all any more: it keeps what fits and says how many follow, and the rest go into replies
in its thread, each holding what fits in turn. Their ``ts`` are kept beside the message's (``{key}|{part}``)
so the next edit changes the same replies; a reply an earlier edit needed and this one does not is emptied,
so every alert is shown in exactly one message.
"""

from __future__ import annotations

import time
from dataclasses import replace

from opsloop.receiver.notify.base import Notifier
from opsloop.receiver.notify.group import GroupNotification
from opsloop.receiver.notify.slack_app import RefStore


async def rewrite(refs: RefStore, notifier: Notifier, key: str, whole: GroupNotification) -> dict[int, tuple[int, str]]:
    """Edit the message remembered under ``key`` (``whole.thread``) to show ``whole.alerts``, continued in
    replies as needed. Returns by incident the part (0: the message itself) and ``ts`` that show the alert."""
    where: dict[int, tuple[int, str]] = {}
    part = 0
    for part, page in enumerate(whole.pages(notifier.group_fit)):
        ref = whole.thread if part == 0 else await refs.message_ref(f"{key}|{part}")
        klass = "resolved" if all(n.kind == "resolved" for n in page.alerts) else "firing"
        shown_at = await notifier.notify_group(replace(page, klass=klass, edit=ref, part=part))
        if shown_at is not None and shown_at != ref:  # a reply posted for the first time, or a lost message again
            await refs.save_message_ref(f"{key}|{part}" if part else key, shown_at, time.time())
        where |= {n.incident.id: (part, shown_at or ref or "") for n in page.alerts}
    for stale in range(part + 1, len(whole.alerts) + 1):  # each reply ever posted held at least one alert
        ref = await refs.message_ref(f"{key}|{stale}")
        if ref is None:
            break
        await notifier.notify_group(replace(whole, alerts=[], edit=ref, part=stale))
    return where
