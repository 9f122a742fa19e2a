"""What automation is doing about an alert, in a few words for every message about it.

Read from the alert's plan runs as stored: waiting for a place, which stage runs or is verified,
recovered, escalated, or skipped and why. Without a run it says why no plan took the alert (a label
failed a plan's pattern) or that no plan matches.
"""

from __future__ import annotations

from collections.abc import Sequence

from opsloop.receiver.config import ReceiverConfig
from opsloop.receiver.domain import ESCALATED, PENDING, PLAN, RECOVERED, SKIPPED, Incident, Job
from opsloop.receiver.routing import decide


def run_state(job: Job, stages: int) -> str:
    """One plan run in a few words."""
    stage = f"stage {job.stage + 1} of {stages}"
    own = job.result.startswith(f"plan {job.target} ")  # "plan X recovered at ...", "plan X did not run: ..."
    if job.state == RECOVERED:
        return job.result if own else f"plan {job.target}: {job.result}"
    if job.state == ESCALATED:
        return f"plan {job.target} ran every stage and escalated: a person is needed"
    if job.state == SKIPPED:
        return job.result if own else f"plan {job.target} was skipped: {job.result}"
    if job.state != PENDING:
        return f"plan {job.target}: {job.state}"
    if job.run_started_at is None:
        return f"plan {job.target} is {job.result}" if job.result.startswith("waiting") else f"plan {job.target} starts"
    if job.phase == "verify":
        return f"plan {job.target} ran {stage} and is verifying it"
    return f"plan {job.target} is at {stage}"


def describe(config: ReceiverConfig, incident: Incident, jobs: Sequence[Job]) -> list[str]:
    """A line per plan run of the alert; or why no plan runs."""
    runs = [j for j in jobs if j.kind == PLAN]
    if runs:
        return [run_state(j, len(plan.stages) if (plan := config.plan(j.target)) else 1) for j in runs]
    decision = decide(config, incident.labels)
    return list(decision.rejected) or ["no plan matches this alert"]
