"""What every notifier shares: the message it is given, the two ways it can fail, and its interface.

A notifier makes exactly one delivery attempt per call. Whether to try again is decided by the error
class it raises; the waiting is done by the worker, which releases the delivery until its next attempt
(``receiver.retry``), never by the notifier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from opsloop.receiver.domain import NOTIFY_KINDS, Incident, Kind, parse_time

if TYPE_CHECKING:
    from opsloop.receiver.notify.group import GroupNotification

KIND_TITLES: Mapping[str, str] = {kind: kind.replace("_", " ").upper() for kind in NOTIFY_KINDS}
"""How a message names its kind: FIRING, RESOLVED, ESCALATION, RECOVERED, AUTOMATION PAUSED,
APPROVAL NEEDED."""


class TransientError(Exception):
    """Worth another attempt later; ``retry_after`` (seconds) is the server's own wish and wins."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """Another attempt would fail the same way (rejected payload, refused recipient, bad TLS setup)."""


@dataclass(frozen=True)
class HistoryEntry:
    """One action attempt of a recovery plan, shown in escalation messages."""

    at: datetime
    plan: str
    stage: int
    action: str
    ok: bool
    detail: str
    unknown: bool = False
    """The receiver stopped while the action ran: it may or may not have done its work."""

    @property
    def result(self) -> str:
        return "ok" if self.ok else ("outcome unknown" if self.unknown else "failed")


@dataclass(frozen=True)
class Notification:
    """One message about one stored alert instance: the incident seen as news of one kind."""

    kind: Kind
    incident: Incident
    history: Sequence[HistoryEntry] = ()
    note: str = ""
    automation: Sequence[str] = ()
    """What automation is doing about the alert: one line per plan run, or why none runs."""
    maybe_repeat: bool = False
    """An earlier attempt was cut off by a crash while handing it over: it may have arrived already."""

    @property
    def status(self) -> str:
        return "resolved" if self.kind == "resolved" else self.incident.status

    @property
    def starts_at(self) -> datetime:
        return parse_time(self.incident.starts_at) or datetime.fromtimestamp(self.incident.received_at, UTC)

    @property
    def ends_at(self) -> datetime | None:
        return parse_time(self.incident.ends_at)


@dataclass(frozen=True)
class Pace:
    """A destination's rate: at most one message per ``interval`` seconds to ``key``, across replicas.

    ``key`` names the destination without revealing it (a webhook URL is a credential).
    """

    key: str
    interval: float


class Notifier(Protocol):
    name: str
    pace: Pace | None
    """Set when the destination limits its rate; the worker then takes a shared send slot first."""
    edits: bool
    """Messages can be changed in place (Slack app mode): resolved alerts update their group's message."""

    async def notify(self, notification: Notification) -> None:
        """Deliver once or raise TransientError / PermanentError."""
        ...

    def preview(self, notification: Notification) -> str:
        """The message as it is sent, as text, for the incident timeline."""
        ...

    def group_fit(self, group: GroupNotification) -> int:
        """How many of the group's alerts, from the first, one message holds (at least one)."""
        ...

    async def notify_group(self, group: GroupNotification) -> str | None:
        """Deliver one message about every alert of ``group`` once, or raise TransientError /
        PermanentError; returns where the message is (a Message-ID, a Slack ``ts``) when it can be found
        again, for threading the group's later messages."""
        ...

    def preview_group(self, group: GroupNotification) -> str: ...

    async def close(self) -> None: ...
