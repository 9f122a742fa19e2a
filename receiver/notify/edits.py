"""Editing a group message in place (Slack app mode) when its alerts resolve, without dropping any.

An edit re-renders the message with its alerts as they are now. Resolved alerts may need more room than
they did firing (a longer summary, what automation did), so a message that held its alerts when posted
may not hold them all any more: it keeps what fits and says how many follow, and the rest go into replies
in its thread, each holding what fits in turn. Their ``ts`` are kept beside the message's (``{key}|{part}``)
so the next edit changes the same replies; a reply an earlier edit needed and this one does not is emptied,
so every alert is shown in exactly one message. A new reply is a new message in the channel: each takes a
send slot of its own (``MoreReplies``), and the message and its replies are edited once every reply exists.
"""

from __future__ import annotations

import time
from dataclasses import replace

from opsloop.receiver.notify.base import Notifier
from opsloop.receiver.notify.group import GroupNotification
from opsloop.receiver.notify.slack_app import RefStore


class MoreReplies(Exception):
    """The edit needs another new reply, which waits for the channel's next send slot: rewrite again then."""


async def rewrite(
    refs: RefStore, notifier: Notifier, key: str, whole: GroupNotification, posts: int | None = 1
) -> dict[int, tuple[int, str]]:
    """Edit the message remembered under ``key`` (``whole.thread``) to show ``whole.alerts``, continued in
    replies as needed, posting at most ``posts`` new replies (None: no limit) before ``MoreReplies``.
    Returns by incident the part (0: the message itself) and ``ts`` that show the alert."""
    pages = whole.pages(notifier.group_fit)
    shown_at = [whole.thread, *[await refs.message_ref(f"{key}|{part}") for part in range(1, len(pages))]]
    posted: set[int] = set()
    for part, page in enumerate(pages):
        if shown_at[part] is None:
            if posts is not None and len(posted) >= posts:
                raise MoreReplies(f"{key}: reply {part} of {len(pages) - 1}")
            shown_at[part] = await _show(refs, notifier, key, page, part, None)
            posted.add(part)
    for part, page in enumerate(pages):
        if part not in posted:
            shown_at[part] = await _show(refs, notifier, key, page, part, shown_at[part])
    for stale in range(len(pages), len(whole.alerts) + 1):  # each reply ever posted held at least one alert
        ref = await refs.message_ref(f"{key}|{stale}")
        if ref is None:
            break
        await notifier.notify_group(replace(whole, alerts=[], edit=ref, part=stale))
    return {n.incident.id: (part, shown_at[part] or "") for part, page in enumerate(pages) for n in page.alerts}


async def _show(
    refs: RefStore, notifier: Notifier, key: str, page: GroupNotification, part: int, ref: str | None
) -> str | None:
    """Post part ``part`` (``ref`` None) or edit it in place; remembers where it is now."""
    klass = "resolved" if all(n.kind == "resolved" for n in page.alerts) else "firing"
    shown_at = await notifier.notify_group(replace(page, klass=klass, edit=ref, part=part))
    if shown_at is not None and shown_at != ref:  # a reply posted for the first time, or a lost message again
        await refs.save_message_ref(f"{key}|{part}" if part else key, shown_at, time.time())
    return shown_at or ref
