"""What every notifier shares: the message it is given, the two ways it can fail, and its interface.

A notifier makes exactly one delivery attempt per call. Whether to try again is decided by the error
class it raises, and the waiting is done by ``receiver.retry.with_backoff``, never by the notifier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

Kind = Literal["firing", "resolved", "escalation", "recovered", "automation_paused"]

KIND_TITLES: Mapping[str, str] = {
    "firing": "FIRING",
    "resolved": "RESOLVED",
    "escalation": "ESCALATION",
    "recovered": "RECOVERED",
    "automation_paused": "AUTOMATION PAUSED",
}


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


@dataclass(frozen=True)
class Notification:
    """One message about one alert instance; ``thread_key`` ties its messages together."""

    kind: Kind
    thread_key: str
    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None
    fingerprint: str
    generator_url: str = ""
    external_url: str = ""
    truncated_alerts: int = 0
    history: Sequence[HistoryEntry] = ()
    note: str = ""

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "alert")


class Notifier(Protocol):
    name: str

    async def notify(self, notification: Notification) -> None:
        """Deliver once or raise TransientError / PermanentError."""
        ...

    async def close(self) -> None: ...
