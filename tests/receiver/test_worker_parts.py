"""The worker's pure parts: the message a delivery job becomes, its preview, urgency and retry delays.

Each expected value is written out from the inputs the test builds (a job and its action records as
the store would return them), not computed with the worker's own helpers.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from opsloop.receiver.config import WorkerConfig
from opsloop.receiver.domain import ActionRecord, Incident, Job
from opsloop.receiver.notify.base import HistoryEntry, Notification
from opsloop.receiver.notify.group import GroupNotification
from opsloop.receiver.worker import build_notification, is_urgent, notification_preview, retry_delay

INCIDENT = Incident(
    fingerprint="fp", starts_at="2030-01-01T00:00:00Z", status="firing", labels={"alertname": "A"},
    annotations={}, ends_at=None, generator_url="", id=7,
)  # fmt: skip


def delivery(notify_kind: str | None = "firing", interrupted: int = 0, **labels: str) -> Job:
    incident = Incident(**{**INCIDENT.__dict__, "labels": {"alertname": "A", **labels}})
    return Job(
        id=1, key="k", kind="delivery", target="slack/oncall", notify_kind=notify_kind, note="a note", values={},
        state="pending", stage=0, phase="attempt", due_at=0.0, run_started_at=None, attempts=0,
        interrupted=interrupted, manual=False, dry_run=False, result="", created_at=0.0, finished_at=None,
        updated_at=0.0, incident=incident,
    )  # fmt: skip


def record(stage: int, state: str, detail: str, dry_run: bool = False) -> ActionRecord:
    return ActionRecord(
        id=1, job_id=2, plan="fix", stage=stage, position=0, type="command", state=state, detail=detail,
        dry_run=dry_run, started_at=1_800_000_000.0, finished_at=None,
    )  # fmt: skip


def test_a_delivery_becomes_the_notification_of_its_kind_with_the_plans_history() -> None:
    history = [record(0, "ok", "done", dry_run=True), record(1, "failed", "exit 3"), record(2, "interrupted", "")]
    built = build_notification(delivery("escalation"), history, ["plan fix escalated"])
    at = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)  # 1_800_000_000 seconds after the epoch
    assert built == Notification(
        kind="escalation", incident=delivery().incident, note="a note", automation=("plan fix escalated",),
        maybe_repeat=False, history=[
            HistoryEntry(at=at, plan="fix", stage=1, action="command", ok=True, detail="done (dry run)"),
            HistoryEntry(at=at, plan="fix", stage=2, action="command", ok=False, detail="exit 3"),
            HistoryEntry(at=at, plan="fix", stage=3, action="command", ok=False, detail="", unknown=True),
        ],
    )  # fmt: skip


@pytest.mark.parametrize(("interrupted", "maybe_repeat"), [(0, False), (1, True)])
def test_a_delivery_without_a_kind_is_a_firing_message_and_an_interrupted_one_may_repeat(
    interrupted: int, maybe_repeat: bool
) -> None:
    built = build_notification(delivery(None, interrupted), [])
    assert (built.kind, built.maybe_repeat, built.history, built.automation) == ("firing", maybe_repeat, [], ())


class Previewing:
    """A notifier's preview side: the text it would send, or a failure to render it."""

    def __init__(self, text: str) -> None:
        self.text = text

    def preview(self, notification: Notification) -> str:
        if not self.text:
            raise LookupError("no template")
        return "one: " + self.text

    def preview_group(self, group: GroupNotification) -> str:
        return "group: " + self.text


@pytest.mark.parametrize(("size", "shown"), [(19_995, 20_000), (19_996, 20_006)])
def test_a_preview_is_kept_whole_up_to_twenty_thousand_characters_and_cut_beyond(size: int, shown: int) -> None:
    one = Notification(kind="firing", incident=INCIDENT)
    text = notification_preview(Previewing("x" * size), one)  # type: ignore[arg-type]
    assert len(text) == shown
    assert text.startswith("one: xxx")
    assert text.endswith("x" if shown == 20_000 else "x\n[cut]")


def test_a_group_is_previewed_as_a_group_and_a_failing_preview_is_named() -> None:
    one = Notification(kind="firing", incident=INCIDENT)
    group = GroupNotification("firing", [one])
    assert notification_preview(Previewing("both"), group) == "group: both"  # type: ignore[arg-type]
    assert notification_preview(Previewing(""), one) == "(the message could not be shown: LookupError)"  # type: ignore[arg-type]


@pytest.mark.parametrize(("kind", "severity", "urgent"), [
    ("escalation", "info", True), ("firing", "critical", True), ("firing", "warning", False),
    ("resolved", "none", False),
])  # fmt: skip
def test_escalations_and_critical_alerts_are_urgent(kind: str, severity: str, urgent: bool) -> None:
    assert is_urgent(delivery(kind, severity=severity)) is urgent


def test_retries_wait_at_most_the_short_cap_until_the_delivery_attempts_are_spent() -> None:
    settings = WorkerConfig(delivery_attempts=3, retry_base=1.0, retry_cap=30.0, redelivery_cap=600.0)
    # a server's Retry-After of 100 s, capped by the cap of the attempt's tier
    assert [retry_delay(settings, attempt, 100.0) for attempt in (1, 2, 3, 4)] == [30.0, 30.0, 100.0, 100.0]
    assert retry_delay(settings, 1, 0.0) == 1.0  # never sooner than retry_base
