"""Single plan steps on a real SQLite store: the boundaries a whole receiver run cannot reach quickly.

Each test ingests one alert, claims its plan job and hands it to ``PlanRunner.step`` with the job in the
state under test; the store's own records (jobs, actions, queued deliveries) are the oracle.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opsloop.receiver.actions import build_action
from opsloop.receiver.config import ReceiverConfig
from opsloop.receiver.domain import (
    DELIVERY,
    ESCALATED,
    PENDING,
    PLAN,
    RECOVERED,
    REJECTED,
    SKIPPED,
    TIMED_OUT,
    Alert,
    Job,
    RoutedAlert,
)
from opsloop.receiver.metrics import ReceiverMetrics
from opsloop.receiver.recovery import PlanRunner
from opsloop.receiver.store import Store, open_store

OWNER = "test-owner"
CONFIG = ReceiverConfig.model_validate({
    "auth": {"bearer_token": "t"},
    "notifiers": {"slack": [{"name": "oncall", "webhook_url": "http://127.0.0.1:9/oncall"}]},
    "routes": [{"match": {}, "notify": ["slack/oncall"]}],
    "recovery": [{"name": "fix", "match": {"alertname": "A"},
                  "actions": [{"type": "command", "argv": [sys.executable, "-c", "pass"], "timeout": "5s"}],
                  "escalate": ["slack/oncall"]},
                 {"name": "ask", "match": {"alertname": "C"},
                  "stages": [{"approve": "required", "approve_timeout": "15m"}],
                  "actions": [{"type": "command", "argv": [sys.executable, "-c", "pass"], "timeout": "5s"}]},
                 {"name": "free", "match": {"alertname": "D"}, "storm_guard": None,
                  "actions": [{"type": "command", "argv": [sys.executable, "-c", "pass"], "timeout": "5s"}]},
                 {"name": "two", "match": {"alertname": "E"},
                  "actions": [{"type": "command", "argv": [sys.executable, "-c", "exit(3)"], "timeout": "5s"},
                              {"type": "command", "argv": [sys.executable, "-c", "pass"], "timeout": "5s"}]},
                 {"name": "dry", "match": {"alertname": "F"}, "dry_run": True,
                  "actions": [{"type": "command", "argv": [sys.executable, "-c", "pass"], "timeout": "5s"}]},
                 {"name": "one", "match": {"alertname": "B"}, "max_concurrent": 1,
                  "actions": [{"type": "command", "argv": [sys.executable, "-c", "pass"], "timeout": "5s"}]}],
})  # fmt: skip
ALERT = Alert(
    fingerprint="fp", starts_at="2030-01-01T00:00:00Z", status="firing", labels={"alertname": "A"},
    annotations={}, ends_at=None, generator_url="",
)  # fmt: skip


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = open_store(f"sqlite://{tmp_path / 'r.db'}")
    await opened.open()
    yield opened
    await opened.close()


def runner(store: Store, metrics: ReceiverMetrics | None = None) -> PlanRunner:
    actions = {plan.name: [build_action(a) for a in plan.actions] for plan in CONFIG.recovery}
    return PlanRunner(CONFIG, store, actions, None, metrics or ReceiverMetrics(), OWNER, 60.0)


async def plan_job(store: Store, plan: str, fingerprint: str = "fp") -> Job:
    """Ingest the alert for ``plan`` and claim its plan job."""
    alert = dataclasses.replace(ALERT, fingerprint=fingerprint)
    await store.ingest([RoutedAlert(alert, notifiers=(), plans=[(plan, {})])], "", 0, time.time())
    (job,) = await store.claim(OWNER, 10, 60, time.time())
    return job


async def jobs_of(store: Store, fingerprint: str = "fp") -> tuple[Job, list[Job]]:
    """The incident's plan job and its delivery jobs."""
    (view,) = [v for v in await store.incidents(limit=10) if v.incident.fingerprint == fingerprint]
    (plan,) = [j for j in view.jobs if j.kind == PLAN]
    return plan, [j for j in view.jobs if j.kind == DELIVERY]


@pytest.mark.parametrize(("interrupted", "escalated"), [(4, False), (5, True)])
async def test_a_step_interrupted_five_times_ends_the_run_with_an_escalation(
    store: Store, interrupted: int, escalated: bool
) -> None:
    await store.ingest([RoutedAlert(ALERT, notifiers=(), plans=[("fix", {})])], "", 0, time.time())
    (job,) = await store.claim(OWNER, 10, 60, time.time())
    await runner(store).step(dataclasses.replace(job, interrupted=interrupted))
    (view,) = await store.incidents(limit=10)
    (after,) = [j for j in view.jobs if j.kind == PLAN]
    told = [(j.target, j.notify_kind) for j in view.jobs if j.kind == DELIVERY]
    if escalated:
        assert told == [("slack/oncall", "escalation")]
        assert (after.state, after.result) == (ESCALATED, "plan fix ran all 1 stages (0 actions, 0 not ok) "
                                               "and the problem remains: its step was interrupted 5 times")  # fmt: skip
        assert view.actions == []
    else:  # below the cap the stage runs (nothing of it had started, so nothing is unknown)
        assert after.state != ESCALATED
        assert told == []
        assert [(a.type, a.state) for a in view.actions] == [("command", "ok")]


async def test_plan_steps_log_under_the_recovery_logger(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "opsloop.receiver.recovery")
    await store.ingest([RoutedAlert(ALERT, notifiers=(), plans=[("fix", {})])], "", 0, time.time())
    (job,) = await store.claim(OWNER, 10, 60, time.time())
    await runner(store).step(dataclasses.replace(job, interrupted=5))
    ended = [r for r in caplog.records if r.getMessage() == "plan run ended"]
    assert [(r.name, r.outcome) for r in ended] == [("opsloop.receiver.recovery", ESCALATED)]


async def test_a_job_whose_plan_is_no_longer_configured_goes_to_the_routes_with_the_reason(store: Store) -> None:
    await runner(store).step(await plan_job(store, "gone"))
    plan, told = await jobs_of(store)
    assert (plan.state, plan.result) == (SKIPPED, "plan gone is no longer configured")
    assert [(j.target, j.notify_kind, j.note) for j in told] == [
        ("slack/oncall", "firing", "plan gone is no longer configured")
    ]


async def test_an_interrupted_stage_is_not_repeated_and_is_verified_after_the_grace_period(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    job = await plan_job(store, "fix")
    started = time.time()
    assert await store.begin_action(job, OWNER, 0, "command", False, started, started + 60) is not None
    metrics = ReceiverMetrics()
    caplog.set_level(logging.WARNING, "opsloop.receiver.recovery")
    await runner(store, metrics).step(dataclasses.replace(job, interrupted=1))
    (view,) = await store.incidents(limit=10)
    assert [(a.type, a.state) for a in view.actions] == [("command", "interrupted")]  # not run again
    sample = {"plan": "fix", "type": "any", "result": "interrupted"}
    assert metrics.registry.get_sample_value("opsloop_receiver_actions_total", sample) == 1
    assert [r.getMessage() for r in caplog.records if r.name == "opsloop.receiver.recovery"] == [
        "stage interrupted, not repeating its actions"
    ]
    plan, _ = await jobs_of(store)
    assert plan.phase == "verify"
    assert plan.due_at >= started + 30  # verify_after: the alert may still resolve meanwhile


async def test_a_run_beyond_max_concurrent_waits_without_ending(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    first = await plan_job(store, "one", "fp1")
    second = await plan_job(store, "one", "fp2")
    metrics = ReceiverMetrics()
    caplog.set_level(logging.INFO, "opsloop.receiver.recovery")
    await runner(store, metrics).step(first)  # takes the only place and runs its stage
    attempted, _ = await jobs_of(store, "fp1")
    # no verify query: the stage's own results decide, at once, and the attempt is counted
    assert (attempted.phase, attempted.attempts) == ("verify", 1)
    assert attempted.due_at <= time.time()
    await runner(store, metrics).step(second)
    waiting, _ = await jobs_of(store, "fp2")
    assert waiting.state == PENDING
    (logged,) = [r for r in caplog.records if r.getMessage() == "plan run waits for a free place"]
    assert logged.result == waiting.result
    for outcome in (PENDING, SKIPPED, ESCALATED, RECOVERED):  # nothing ended, so no run is counted
        labels = {"plan": "one", "outcome": outcome}
        assert metrics.registry.get_sample_value("opsloop_receiver_plan_runs_total", labels) is None


async def test_a_stage_that_needs_approval_asks_the_routes_and_waits_until_the_deadline(store: Store) -> None:
    job = await plan_job(store, "ask")
    asked = time.time()
    await runner(store).step(job)
    approval = await store.approval(job.id, 0)
    assert approval is not None
    assert approval.state == PENDING
    assert asked + 900 <= approval.deadline <= time.time() + 900
    plan, told = await jobs_of(store)
    assert plan.due_at == approval.deadline
    assert [(j.target, j.notify_kind, j.note) for j in told] == [
        ("slack/oncall", "approval_needed", f"plan ask waits for approval before stage 1 (incident {job.incident.id})")
    ]
    (view,) = await store.incidents(limit=10)
    assert view.actions == []  # nothing runs before a decision


@pytest.mark.parametrize(
    ("state", "actor", "reason", "why"),
    [
        (REJECTED, "alice", "too risky", "stage 1 was rejected by alice: too risky"),
        (REJECTED, "", "", "stage 1 was rejected by someone"),
        (TIMED_OUT, "", "nobody came", "no one approved stage 1: nobody came"),
    ],
)
async def test_a_declined_stage_escalates_with_who_and_why_and_runs_nothing(
    store: Store, state: str, actor: str, reason: str, why: str
) -> None:
    job = await plan_job(store, "ask")
    await runner(store).step(job)  # asks for approval
    assert await store.decide_approval(job.id, 0, state, actor, reason, time.time())
    # the decision makes the run due at once
    (decided,) = [j for j in await store.claim(OWNER, 10, 60, time.time()) if j.kind == PLAN]
    await runner(store).step(decided)
    plan, told = await jobs_of(store)
    note = f"plan ask stopped before stage 1: {why}"
    assert (plan.state, plan.result) == (ESCALATED, note)
    assert [(j.notify_kind, j.note) for j in told] == [("approval_needed", told[0].note), ("escalation", note)]
    (view,) = await store.incidents(limit=10)
    assert view.actions == []


async def test_a_plan_without_a_storm_guard_runs_its_stage(store: Store) -> None:
    await runner(store).step(await plan_job(store, "free"))
    (view,) = await store.incidents(limit=10)
    assert [(a.type, a.state) for a in view.actions] == [("command", "ok")]


@pytest.mark.parametrize(("plan", "ran", "counted"), [
    ("fix", [("command", "ok")], "ok"),
    ("two", [("command", "failed")], "failed"),  # the failure stops the stage: the second action never runs
    ("dry", [("command", "ok")], "dry_run"),
])  # fmt: skip
async def test_actions_are_counted_and_timed_by_outcome(
    store: Store, plan: str, ran: list[object], counted: str
) -> None:
    metrics = ReceiverMetrics()
    job = await plan_job(store, plan)
    before = time.time()
    await runner(store, metrics).step(job)
    after = time.time()
    (view,) = await store.incidents(limit=10)
    assert [(a.type, a.state) for a in view.actions] == ran
    assert [a.dry_run for a in view.actions] == [plan == "dry"]
    sample = metrics.registry.get_sample_value
    assert sample("opsloop_receiver_actions_total", {"plan": plan, "type": "command", "result": counted}) == 1
    assert sample("opsloop_receiver_action_duration_seconds_count", {"plan": plan, "type": "command"}) == 1
    assert (
        0 < sample("opsloop_receiver_action_duration_seconds_sum", {"plan": plan, "type": "command"}) <= after - before
    )
