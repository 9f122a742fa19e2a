"""The receiver's domain: one alert type and the rules every part shares.

An ``Alert`` is parsed straight from the webhook payload, stored as the alert of an ``Incident`` and
shown through a notification's view of that incident, so its fields are declared once, here. This
module also owns the job kinds and states, the notification kinds, every key format (notifier,
plan run, delivery) and the texts that say why a plan did not run. It imports nothing of the receiver.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, ConfigDict, Field

# Job kinds: a plan run or a notification delivery.
PLAN, DELIVERY = "plan", "delivery"
# Job states: pending until done; plans end recovered, escalated or skipped, deliveries sent or failed.
PENDING, RECOVERED, ESCALATED, SKIPPED, SENT, FAILED = (
    "pending",
    "recovered",
    "escalated",
    "skipped",
    "sent",
    "failed",
)
REPLACED = "replaced"
"""A firing message that had not gone out when its alert resolved: the resolved message replaces it."""
GLOBAL = "*"
"""The pause scope that stops every plan."""
# Approval states: pending until a person approves or rejects, or the deadline passes first.
APPROVED, REJECTED, TIMED_OUT = "approved", "rejected", "timed_out"

Kind = Literal["firing", "resolved", "escalation", "recovered", "automation_paused", "approval_needed"]
"""What a notification says about its alert."""
NOTIFY_KINDS: tuple[Kind, ...] = get_args(Kind)
GROUPED: tuple[Kind, ...] = ("firing", "resolved")
"""Kinds that go out as one message per group of alerts (Alertmanager's group, per notifier)."""
ANNOUNCED: tuple[Kind, ...] = ("firing", "escalation")
"""Kinds that told a notifier the alert is a problem: it hears about the resolution too."""

ZERO_TIME = "0001-01-01T00:00:00Z"


def parse_time(value: str | None) -> datetime | None:
    """Alertmanager timestamps (RFC 3339, nanoseconds allowed); the zero time means unset."""
    if not value or value.startswith("0001-01-01"):
        return None
    text = value.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Python parses at most microseconds: trim the fraction, keep the offset.
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)].ljust(6, '0')}{rest[digits:]}"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _timestamp(value: str) -> str:
    try:
        parse_time(value)
    except ValueError as exc:
        raise ValueError(f"expected an RFC 3339 timestamp, got {value[:40]!r}") from exc
    return value


Timestamp = Annotated[str, AfterValidator(_timestamp)]


@dataclass(frozen=True)
class Alert:
    """One alert instance, as Alertmanager's webhook (version 4) names its fields.

    Parsed leniently (unknown fields are ignored); ``ends_at`` is None while the alert fires.
    """

    __pydantic_config__ = ConfigDict(extra="ignore", populate_by_name=True)

    fingerprint: Annotated[str, Field(min_length=1)]
    starts_at: Annotated[Timestamp, Field(alias="startsAt", min_length=1)]
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)
    ends_at: Annotated[Timestamp | None, Field(alias="endsAt")] = ZERO_TIME
    generator_url: Annotated[str, Field(alias="generatorURL")] = ""

    def __post_init__(self) -> None:
        if self.status == "firing":
            object.__setattr__(self, "ends_at", None)

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "alert")

    @property
    def thread_key(self) -> str:
        """Ties every message about this alert instance together (email threads)."""
        return f"{self.fingerprint}:{self.starts_at}"


@dataclass(frozen=True, kw_only=True)
class Incident(Alert):
    """An alert as stored, with what its webhook said about the group."""

    id: int
    external_url: str = ""
    truncated_alerts: int = 0
    received_at: float = 0.0


@dataclass(frozen=True)
class RoutedAlert:
    """An alert of a webhook with what routing decided for it: plans to run and notifiers to tell."""

    alert: Alert
    plans: Sequence[tuple[str, Mapping[str, str]]] = ()
    notifiers: Sequence[str] = ()
    note: str = ""
    notify_firing: bool = True
    """Tell the routes' notifiers at once, even while a plan works on the alert."""
    group_key: str = ""
    """The Alertmanager group the webhook carried (``groupKey``); empty: every alert is a message alone."""
    group_windows: Mapping[str, float] = field(default_factory=dict)
    """Per notifier, the ``group_window`` of the route that named it: how long its message waits for
    more alerts of the same group."""

    def group_wait(self, notifier: str) -> float | None:
        """How long a message to ``notifier`` waits for more of its group; None: it goes out at once
        (no group, no window for this notifier, or a page: a critical alert never waits)."""
        wait = self.group_windows.get(notifier)
        if not self.group_key or wait is None or self.alert.labels.get("severity") == "critical":
            return None
        return wait

    @property
    def work_due_now(self) -> bool:
        """Whether storing this alert may leave work due at once (a worker should look now). A firing
        alert whose every message waits for its group does not: the worker's poll finds those when due.
        A resolved alert may (plans waiting for it, notifiers that heard it fire), whatever its routes."""
        if self.alert.status != "firing" or self.plans:
            return True
        return any(not self.group_wait(notifier) for notifier in self.notifiers)  # a window of 0 waits for nothing


@dataclass(frozen=True)
class Job:
    """A unit of durable work: one plan run or one delivery, leased by one worker at a time."""

    id: int
    key: str
    kind: str
    target: str
    notify_kind: Kind | None
    note: str
    values: dict[str, str]
    state: str
    stage: int
    phase: str
    due_at: float
    run_started_at: float | None
    attempts: int
    interrupted: int
    manual: bool
    dry_run: bool
    result: str
    created_at: float
    finished_at: float | None
    updated_at: float
    incident: Incident
    group: str = ""
    """The delivery's group (notifier, message class and Alertmanager group), empty when it goes alone."""
    message_ref: str = ""
    """The notifier's id of the group message that told it (a Slack ``ts`` in app mode, an email's
    Message-ID), once sent; empty for a Slack webhook, which names no message, and for a message alone."""


@dataclass(frozen=True)
class ActionRecord:
    id: int
    job_id: int
    plan: str
    stage: int
    position: int
    type: str
    state: str
    detail: str
    dry_run: bool
    started_at: float
    finished_at: float | None


@dataclass(frozen=True)
class NewDelivery:
    """A notification to queue; ``key`` makes queuing it twice a no-op."""

    key: str
    notifier: str
    kind: Kind
    note: str = ""


@dataclass(frozen=True)
class Outcome:
    """How a job step ends: its new state and result text, plus notifications to queue atomically."""

    state: str
    result: str
    deliveries: Sequence[NewDelivery] = ()


@dataclass(frozen=True)
class Gate:
    """Plan limits checked atomically before an attempt."""

    cooldown: float
    per_hour: int | None
    per_day: int | None
    breaker_max: int
    breaker_window: float
    first: bool
    storm_max: int | None = None
    """Runs of this plan allowed within ``storm_window``; one more pauses the plan (its storm guard)."""
    storm_window: float = 600.0
    max_concurrent: int | None = None
    """Runs of this plan in progress at once; a new run waits for a free place instead of starting."""


@dataclass(frozen=True)
class Approval:
    """A person's go-ahead asked for before a plan stage; its ``state`` leaves ``pending`` exactly once."""

    job_id: int
    stage: int
    state: str
    requested_at: float
    deadline: float
    decided_by: str
    decided_at: float | None
    reason: str


@dataclass(frozen=True)
class Event:
    """A line of an incident's timeline the other records do not hold: manual changes (with who made
    them), verifications and messages as sent; without an incident, a change to automation as a whole."""

    id: int
    incident_id: int | None
    job_id: int | None
    at: float
    kind: str
    actor: str
    title: str
    detail: str


@dataclass(frozen=True)
class ManualRun:
    """A plan run a person asked for, and the incident that stands for it."""

    job_id: int
    incident_id: int


@dataclass(frozen=True)
class IncidentView:
    incident: Incident
    jobs: list[Job] = field(default_factory=list)
    actions: list[ActionRecord] = field(default_factory=list)
    approvals: list[Approval] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


# -- keys --------------------------------------------------------------------------------------------


def notifier_key(integration: str, name: str) -> str:
    """How routes, plans and deliveries name a notifier: ``slack/oncall``, ``email/oncall``."""
    return f"{integration}/{name}"


def delivery_key(notifier: str, fingerprint: str, starts_at: str, kind: Kind, scope: str = "") -> str:
    """One delivery per notifier, alert instance, kind and scope: queuing it again is a no-op."""
    return "|".join(filter(None, (DELIVERY, notifier, fingerprint, starts_at, kind, scope)))


def group_id(notifier: str, klass: str, group_key: str) -> str:
    """A group of deliveries sent as one message: notifier, message class (``firing``, ``resolved`` or
    ``skipped``: plans that did not run) and Alertmanager group key."""
    return "|".join((notifier, klass, group_key))


def group_class(gid: str) -> str:
    return gid.split("|", 2)[1]


def plan_key(plan: str, fingerprint: str, starts_at: str) -> str:
    """One run of a plan per alert instance."""
    return "|".join((PLAN, plan, fingerprint, starts_at, "firing"))


# -- why a plan did not run ----------------------------------------------------------------------------


def paused_why(reason: str, scope: str | None = None) -> str:
    """A stored pause names its scope; the one the breaker trips just now does not."""
    if scope is None:
        return f"automation paused: {reason}"
    return f"automation paused ({'all plans' if scope == GLOBAL else 'this plan'}): {reason}"


def breaker_why(count: int, window: float) -> str:
    return f"circuit breaker: {count} actions within {window:g}s"


def storm_why(count: int, window: float) -> str:
    return f"storm guard: {count} runs of this plan within {window:g}s"


def concurrency_why(running: int) -> str:
    return f"waiting: {running} runs of this plan are in progress (max_concurrent)"


CIRCUIT_BREAKER, STORM_GUARD = "circuit_breaker", "storm_guard"
"""The guards that pause automation by themselves (label values of opsloop_receiver_guard_trips_total)."""


def cooldown_why(seconds_ago: float) -> str:
    return f"cooldown: the plan last ran for these labels {seconds_ago:.0f}s ago"


def cap_why(cap: int, unit: str) -> str:
    return f"max_runs: {cap} runs per {unit} reached"
