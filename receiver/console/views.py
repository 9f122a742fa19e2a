"""What the console shows about an incident: its plan state in one line, and its timeline.

Both are computed from one ``IncidentView`` as the store returns it (the same view the admin API
serialises), so the pages never query anything of their own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from opsloop.receiver.console.filters import format_when
from opsloop.receiver.domain import (
    DELIVERY,
    PENDING,
    PLAN,
    SKIPPED,
    Approval,
    IncidentView,
    Job,
    parse_time,
)

HIDDEN_KEY_LABELS = {"alertname", "severity", "prometheus", "job"}
WAITING = "waiting for approval"


@dataclass(frozen=True)
class PlanState:
    plan: str
    state: str
    """running, waiting for approval, recovered, escalated, skipped (or the job state as stored)."""
    detail: str = ""


@dataclass(frozen=True)
class Entry:
    """One line of the timeline; ``kind`` is also printed, so the page never relies on colour alone."""

    at: float
    kind: str
    title: str
    detail: str = ""
    actor: str = ""
    outcome: str = ""
    dry_run: bool = False
    message: str = ""
    """The notifier's id of the message a delivery went out in (Slack ``ts``, email Message-ID), if known."""


def firing_for(view: IncidentView, now: float) -> float:
    """Seconds from the alert's ``startsAt`` (else its arrival) to its end, or to now while it fires."""
    began, ended = parse_time(view.incident.starts_at), parse_time(view.incident.ends_at)
    return (ended.timestamp() if ended else now) - (began.timestamp() if began else view.incident.received_at)


def key_labels(labels: dict[str, str], most: int = 4) -> list[tuple[str, str]]:
    return [(k, v) for k, v in sorted(labels.items()) if k not in HIDDEN_KEY_LABELS][:most]


def pending_approval(view: IncidentView, job: Job) -> Approval | None:
    """The approval a pending run waits for (a run that ended, say because the alert resolved, waits no more)."""
    if job.state != PENDING:
        return None
    return next((a for a in view.approvals if a.job_id == job.id and a.state == PENDING), None)


def plan_states(view: IncidentView) -> list[PlanState]:
    states = []
    for job in view.jobs:
        if job.kind != PLAN:
            continue
        if job.state == PENDING:
            waiting = pending_approval(view, job)
            if waiting is not None:
                states.append(PlanState(job.target, WAITING, f"before stage {waiting.stage + 1}"))
            else:
                states.append(PlanState(job.target, "running", f"stage {job.stage + 1}, {job.phase}"))
        else:
            states.append(PlanState(job.target, job.state, job.result if job.state == SKIPPED else ""))
    return states


def timeline(view: IncidentView) -> list[Entry]:
    """Every recorded event of the incident in time order (ties keep the order they happened in)."""
    incident = view.incident
    labels = ", ".join(f"{k}={v}" for k, v in sorted(incident.labels.items()))
    entries = [Entry(incident.received_at, "webhook", "alert received", labels)]
    entries += _routing(view)
    for job in view.jobs:
        entries += _plan_entries(view, job) if job.kind == PLAN else _delivery_entries(job)
    for action in view.actions:
        entries.append(Entry(
            action.started_at, "action", f"{action.plan} stage {action.stage + 1}: {action.type}",
            action.detail, outcome=action.state, dry_run=action.dry_run,
        ))  # fmt: skip
    for approval in view.approvals:
        entries.append(Entry(approval.requested_at, "approval", f"approval requested before stage "
                             f"{approval.stage + 1}", f"decide by {_utc(approval.deadline)}"))  # fmt: skip
        if approval.decided_at is not None:
            entries.append(Entry(approval.decided_at, "approval", f"stage {approval.stage + 1} {approval.state}",
                                 approval.reason, actor=approval.decided_by, outcome=approval.state))  # fmt: skip
    for event in view.events:
        entries.append(Entry(event.at, event.kind, event.title, event.detail, actor=event.actor))
    ended = parse_time(incident.ends_at)
    if incident.status == "resolved" and ended is not None:
        entries.append(Entry(ended.timestamp(), "webhook", "alert resolved"))
    return sorted(entries, key=lambda e: e.at)


def _routing(view: IncidentView) -> Iterable[Entry]:
    at = view.incident.received_at
    routed = [j.target for j in view.jobs if j.kind == DELIVERY and j.notify_kind == "firing" and j.created_at == at]
    plans = [f"{j.target} ({', '.join(f'{k}={v}' for k, v in sorted(j.values.items()))})"
             for j in view.jobs if j.kind == PLAN and j.created_at == at and not j.manual]  # fmt: skip
    notes = {j.note for j in view.jobs if j.kind == DELIVERY and j.created_at == at and j.note}
    if routed or plans or notes:
        title = f"plans: {', '.join(plans) or 'none'}; firing message to: {', '.join(routed) or 'nobody at once'}"
        yield Entry(at, "route", title, "; ".join(sorted(notes)))


def _plan_entries(view: IncidentView, job: Job) -> Iterable[Entry]:
    how = "run by hand" if job.manual else "automatic"
    if job.run_started_at is not None:
        yield Entry(job.run_started_at, "plan", f"plan {job.target} started ({how})", dry_run=job.dry_run)
    if job.finished_at is not None:
        outcome = job.state
        yield Entry(job.finished_at, "plan", f"plan {job.target} {outcome}", job.result, outcome=outcome,
                    dry_run=job.dry_run)  # fmt: skip
    elif job.state == PENDING and job.result:
        yield Entry(job.updated_at, "plan", f"plan {job.target} at stage {job.stage + 1}", job.result)


def _delivery_entries(job: Job) -> Iterable[Entry]:
    title = f"{job.notify_kind} message to {job.target}"
    retries = max(0, job.attempts - 1)
    detail = f"{job.result or 'queued'}" + (f" after {retries} retr{'y' if retries == 1 else 'ies'}" if retries else "")
    if job.state == PENDING:
        yield Entry(job.created_at, "delivery", f"{title} queued", detail, outcome="pending")
    else:
        at = job.finished_at or job.updated_at
        yield Entry(at, "delivery", title, detail, outcome=job.state, message=job.message_ref)


def _utc(at: float) -> str:
    return format_when(at) + " UTC"
