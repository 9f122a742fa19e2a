"""What people change (pauses, runs by hand, approvals), on both backends, checked against the rows it leaves.

The rows are read beside the store (``rows``): a run by hand is an incident and a job like any other, and
the timeline records exactly what was done, by whom, and nothing for a change that changed nothing.
"""

from __future__ import annotations

import json

from opsloop.receiver.domain import APPROVED, GLOBAL, PENDING, PLAN
from opsloop.receiver.store import Store

from tests.receiver.store.test_ops_rows import rows
from tests.receiver.store.test_steering import NOW, waiting_job

EVENTS = "SELECT incident_id, job_id, at, kind, actor, title, detail FROM events ORDER BY id"


async def test_a_run_by_hand_is_a_firing_incident_of_its_own_with_a_plan_job_and_a_timeline_line(
    store: Store,
) -> None:
    labels = {"svc": "a", "env": "prod"}
    started = "2030-01-02T00:00:00Z"
    run = await store.start_manual_run("fix", labels, {"q": "1"}, True, "r7", NOW, started, "dana")
    assert rows(store, "SELECT id, fingerprint, starts_at, status, annotations, ends_at, generator_url, "
                       "external_url, truncated_alerts, received_at, updated_at FROM incidents") == [
        (run.incident_id, "manual-r7", started, "firing", "{}", None, "", "", 0, NOW, NOW),
    ]  # fmt: skip
    ((stored,),) = rows(store, "SELECT labels FROM incidents")
    assert json.loads(stored) == labels
    assert rows(store, "SELECT id, kind, incident_id, target, note, manual, dry_run FROM jobs") == [
        (run.job_id, PLAN, run.incident_id, "fix", "run by hand", 1, 1),
    ]  # fmt: skip
    ((vals,),) = rows(store, "SELECT vals FROM jobs")
    assert json.loads(vals) == {"q": "1"}
    assert rows(store, EVENTS) == [
        (run.incident_id, run.job_id, NOW, "manual", "dana", "ran plan fix by hand (dry run)", "env=prod, svc=a"),
    ]  # fmt: skip
    real = await store.start_manual_run("fix", {}, {}, False, "r8", NOW + 1, started, "erik")
    assert rows(store, f"SELECT title, detail FROM events WHERE job_id = {real.job_id}") == [
        ("ran plan fix by hand", ""),
    ]  # fmt: skip


async def test_pausing_again_replaces_the_reason_and_resuming_what_is_not_paused_records_nothing(
    store: Store,
) -> None:
    await store.pause(GLOBAL, "first", NOW, "ann")
    await store.pause(GLOBAL, "second", NOW + 1, "bob")
    assert rows(store, "SELECT scope, reason, at FROM pauses") == [(GLOBAL, "second", NOW + 1)]
    assert await store.resume(GLOBAL, NOW + 2, "carl")
    assert not await store.resume(GLOBAL, NOW + 3, "dana")
    assert not await store.resume("fix", NOW + 4, "dana")
    assert rows(store, EVENTS) == [
        (None, None, NOW, "pause", "ann", "paused all plans", "first"),
        (None, None, NOW + 1, "pause", "bob", "paused all plans", "second"),
        (None, None, NOW + 2, "resume", "carl", "resumed all plans", ""),
    ]  # fmt: skip


async def test_an_approval_request_is_a_pending_row_and_a_decision_makes_the_run_due_once(store: Store) -> None:
    job_id = await waiting_job(store)
    assert rows(store, "SELECT job_id, stage, state, requested_at, deadline, decided_by, decided_at, reason "
                       "FROM approvals") == [(job_id, 0, PENDING, NOW, NOW + 600, "", None, "")]  # fmt: skip
    waiting = f"SELECT due_at, attempts, result, lease_owner FROM jobs WHERE id = {job_id}"
    assert rows(store, waiting) == [(NOW + 600, 0, "waiting for approval", None)]  # released, not attempted
    assert await store.decide_approval(job_id, 0, APPROVED, "ann", "looks right", NOW + 2)
    assert not await store.decide_approval(job_id, 0, APPROVED, "bob", "", NOW + 3)
    assert not await store.decide_approval(job_id, 1, APPROVED, "bob", "", NOW + 3)  # no such stage asked
    assert await store.approval(job_id, 1) is None
    assert rows(store, "SELECT state, decided_by, decided_at, reason FROM approvals") == [
        (APPROVED, "ann", NOW + 2, "looks right"),
    ]  # fmt: skip
    assert rows(store, f"SELECT due_at FROM jobs WHERE id = {job_id}") == [(NOW + 2,)]
