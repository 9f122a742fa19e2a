"""Single plan steps on a real SQLite store: the boundaries a whole receiver run cannot reach quickly.

Each test ingests one alert, claims its plan job and hands it to ``PlanRunner.step`` with the job in the
state under test; the store's own records (jobs, actions, queued deliveries) are the oracle.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import closing
from pathlib import Path

import aiohttp
import pytest
from opsloop.receiver.actions import ActionResult, build_action
from opsloop.receiver.config import ReceiverConfig
from opsloop.receiver.console.config import ConsoleConfig
from opsloop.receiver.domain import (
    APPROVED,
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
from opsloop.receiver.recovery import PlanRunner, Verifier
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


def fix_plan(*commands: list[str], **plan: object) -> ReceiverConfig:
    """A config whose plan ``fix`` (alertname A) runs one command action per ``python -c`` argument list."""
    actions = [{"type": "command", "argv": [sys.executable, "-c", *args], "timeout": "5s"} for args in commands]
    return ReceiverConfig.model_validate({
        "auth": {"bearer_token": "t"},
        "recovery": [{"name": "fix", "match": {"alertname": "A"}, **plan, "actions": actions}],
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


def runner(store: Store, metrics: ReceiverMetrics | None = None, config: ReceiverConfig = CONFIG) -> PlanRunner:
    actions = {plan.name: [build_action(a) for a in plan.actions] for plan in config.recovery}
    return PlanRunner(config, store, actions, None, metrics or ReceiverMetrics(), OWNER, 60.0)


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
    store: Store, caplog: pytest.LogCaptureFixture, state: str, actor: str, reason: str, why: str
) -> None:
    job = await plan_job(store, "ask")
    await runner(store).step(job)  # asks for approval
    assert await store.decide_approval(job.id, 0, state, actor, reason, time.time())
    # the decision makes the run due at once
    (decided,) = [j for j in await store.claim(OWNER, 10, 60, time.time()) if j.kind == PLAN]
    caplog.set_level(logging.INFO, "opsloop.receiver.recovery")
    await runner(store).step(decided)
    # the run ended there: no action was even tried (it would find the lease gone and say so)
    logged = [r.getMessage() for r in caplog.records if r.name == "opsloop.receiver.recovery"]
    assert logged == ["plan run ended"]
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


async def test_an_approval_request_links_to_the_console_and_is_logged(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    config = CONFIG.model_copy(update={"console": ConsoleConfig(external_url="https://console.example.com/")})
    caplog.set_level(logging.INFO, "opsloop.receiver.recovery")
    job = await plan_job(store, "ask")
    await runner(store, config=config).step(job)
    _, told = await jobs_of(store)
    link = f"https://console.example.com/ui/incidents/{job.incident.id}"
    assert [(j.notify_kind, j.note) for j in told] == [
        ("approval_needed", f"plan ask waits for approval before stage 1: {link}")
    ]
    logged = [r for r in caplog.records if r.name == "opsloop.receiver.recovery"]
    assert [(r.getMessage(), r.job, r.plan, r.stage, r.fingerprint) for r in logged] == [
        ("plan waits for approval", job.id, "ask", 0, "fp")
    ]


async def test_an_approval_past_its_deadline_times_out_and_escalates(store: Store) -> None:
    job = await plan_job(store, "ask")
    now = time.time()
    assert await store.request_approval(job, OWNER, now - 20, now - 10, [])  # asked, and nobody came in time
    (due,) = await store.claim(OWNER, 10, 60, time.time())
    await runner(store).step(due)
    approval = await store.approval(job.id, 0)
    assert approval is not None
    assert (approval.state, approval.decided_by, approval.reason) == (TIMED_OUT, "", "no decision within 900s")
    plan, told = await jobs_of(store)
    note = "plan ask stopped before stage 1: no one approved stage 1: no decision within 900s"
    assert (plan.state, plan.result) == (ESCALATED, note)
    assert [(j.target, j.notify_kind, j.note) for j in told] == [("slack/oncall", "escalation", note)]
    (view,) = await store.incidents(limit=10)
    assert view.actions == []


async def test_a_person_who_decides_as_the_approval_times_out_is_followed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = await plan_job(store, "ask")
    now = time.time()
    assert await store.request_approval(job, OWNER, now - 20, now - 10, [])
    decide = store.decide_approval

    async def approved_just_before(job_id: int, stage: int, state: str, actor: str, reason: str, at: float) -> bool:
        # alice's approval commits in the real store a moment before the timeout's conditional update
        assert await decide(job_id, stage, APPROVED, "alice", "", at)
        return await decide(job_id, stage, state, actor, reason, at)

    monkeypatch.setattr(store, "decide_approval", approved_just_before)
    (due,) = await store.claim(OWNER, 10, 60, time.time())
    await runner(store).step(due)
    approval = await store.approval(job.id, 0)
    assert approval is not None
    assert (approval.state, approval.decided_by) == (APPROVED, "alice")
    (view,) = await store.incidents(limit=10)
    assert [(a.type, a.state) for a in view.actions] == [("command", "ok")]
    plan, told = await jobs_of(store)
    assert (plan.state, plan.phase, told) == (PENDING, "verify", [])


async def test_an_action_runs_under_a_lease_that_covers_its_timeout(store: Store, tmp_path: Path) -> None:
    seen = tmp_path / "lease_until"
    # the action reads its job's lease from the database while it runs
    peek = (
        "import sqlite3, sys; row = sqlite3.connect(sys.argv[1]).execute("
        "\"SELECT lease_until FROM jobs WHERE kind = 'plan'\").fetchone(); open(sys.argv[2], 'w').write(repr(row[0]))"
    )
    config = fix_plan([peek, str(tmp_path / "r.db"), str(seen)])
    job = await plan_job(store, "fix")
    before = time.time()
    await runner(store, config=config).step(job)
    after = time.time()
    (view,) = await store.incidents(limit=10)
    assert [(a.type, a.state) for a in view.actions] == [("command", "ok")]
    assert before + 5 + 60 <= float(seen.read_text()) <= after + 5 + 60  # the action's timeout plus the lease


async def test_a_run_woken_before_its_approval_deadline_waits_again(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    job = await plan_job(store, "ask")
    await runner(store).step(job)  # asks, and waits until the deadline
    approval = await store.approval(job.id, 0)
    assert approval is not None
    # a worker whose clock runs ahead finds the run due before the deadline
    (early,) = [j for j in await store.claim(OWNER, 10, 60, approval.deadline) if j.kind == PLAN]
    caplog.set_level(logging.INFO, "opsloop.receiver.recovery")
    await runner(store).step(early)
    assert [r.getMessage() for r in caplog.records if r.name == "opsloop.receiver.recovery"] == []
    plan, told = await jobs_of(store)
    assert (plan.state, plan.due_at) == (PENDING, approval.deadline)
    assert [j.notify_kind for j in told] == ["approval_needed"]  # asked once
    (view,) = await store.incidents(limit=10)
    assert view.actions == []


async def test_an_action_whose_lease_was_taken_meanwhile_stops_the_stage(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the first action hands the job to another replica, as a takeover after an expired lease would
    steal = (
        "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); "
        "db.execute(\"UPDATE jobs SET lease_owner = 'other' WHERE kind = 'plan'\"); db.commit()"
    )
    config = fix_plan([steal, str(tmp_path / "r.db")], ["pass"])
    job = await plan_job(store, "fix")
    caplog.set_level(logging.INFO, "opsloop.receiver.recovery")
    await runner(store, config=config).step(job)
    (view,) = await store.incidents(limit=10)
    assert [(a.position, a.state) for a in view.actions] == [(0, "ok")]  # the second never started
    logged = [r for r in caplog.records if r.name == "opsloop.receiver.recovery"]
    assert [(r.levelno, r.getMessage(), r.job) for r in logged] == [
        (logging.WARNING, "lease lost before an action", job.id)
    ]
    with closing(sqlite3.connect(tmp_path / "r.db")) as db:  # the other replica's lease is left alone
        assert db.execute("SELECT lease_owner, phase, attempts FROM jobs WHERE kind = 'plan'").fetchall() == [
            ("other", "attempt", 0)
        ]


class Raising:
    """An action with a bug: it raises instead of returning a result."""

    type = "command"

    async def run(self, values: Mapping[str, str], *, dry_run: bool = False) -> ActionResult:
        raise LookupError("a bug")

    async def close(self) -> None:
        return None


async def test_an_action_that_raises_counts_as_failed_and_is_logged(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = ReceiverMetrics()
    caplog.set_level(logging.INFO, "opsloop.receiver.recovery")
    job = await plan_job(store, "fix")
    runs = PlanRunner(CONFIG, store, {"fix": [Raising()]}, None, metrics, OWNER, 60.0)
    await runs.step(job)
    (view,) = await store.incidents(limit=10)
    assert [(a.state, a.detail, a.dry_run) for a in view.actions] == [("failed", "internal error: LookupError", False)]
    sample = {"plan": "fix", "type": "command", "result": "failed"}
    assert metrics.registry.get_sample_value("opsloop_receiver_actions_total", sample) == 1
    (raised,) = [r for r in caplog.records if r.getMessage() == "action raised"]
    assert (raised.name, raised.levelno, raised.job, raised.action) == (
        "opsloop.receiver.recovery",
        logging.ERROR,
        job.id,
        "command",
    )
    assert raised.exc_info is not None
    assert isinstance(raised.exc_info[1], LookupError)
    plan, _ = await jobs_of(store)
    assert (plan.phase, plan.attempts) == ("verify", 1)  # the job went on, not stuck


@pytest.mark.parametrize(("plan", "title", "detail"), [
    ("fix", "fix stage 1 verification: recovered", "every action of the stage succeeded"),
    ("two", "two stage 1 verification: not yet", "an action of the stage did not succeed"),
])  # fmt: skip
async def test_a_verification_is_recorded_on_the_incident_timeline(
    store: Store, plan: str, title: str, detail: str
) -> None:
    job = await plan_job(store, plan)
    await runner(store).step(job)  # no verify query: the stage's results are verified at once
    (due,) = [j for j in await store.claim(OWNER, 10, 60, time.time()) if j.kind == PLAN]
    assert due.phase == "verify"
    await runner(store).step(due)
    (view,) = await store.incidents(limit=10)
    assert [(e.kind, e.job_id, e.title, e.detail) for e in view.events] == [("verify", job.id, title, detail)]


async def test_the_next_stage_is_due_at_its_offset_from_the_runs_first_attempt(store: Store) -> None:
    config = fix_plan(["exit(3)"], stages=["0s", "10m", "20m"])
    await runner(store, config=config).step(await plan_job(store, "fix"))  # stage 1 fails
    (due,) = [j for j in await store.claim(OWNER, 10, 60, time.time()) if j.kind == PLAN]
    await runner(store, config=config).step(due)  # not recovered: stage 2 is planned, not 3
    plan, _ = await jobs_of(store)
    assert plan.run_started_at is not None
    assert (plan.stage, plan.phase, plan.due_at) == (1, "attempt", plan.run_started_at + 600)


async def test_an_alert_resolved_before_verification_counts_as_recovered_whatever_the_actions_did(
    store: Store,
) -> None:
    await runner(store).step(await plan_job(store, "two"))  # its first action fails
    resolved = dataclasses.replace(ALERT, status="resolved", ends_at="2030-01-01T00:05:00Z")
    await store.ingest([RoutedAlert(resolved, notifiers=(), plans=[])], "", 0, time.time())
    (due,) = [j for j in await store.claim(OWNER, 10, 60, time.time()) if j.kind == PLAN]
    await runner(store).step(due)
    (view,) = await store.incidents(limit=10)
    assert [(e.title, e.detail) for e in view.events if e.kind == "verify"] == [
        ("two stage 1 verification: recovered", "the alert resolved")
    ]
    plan, _ = await jobs_of(store)
    assert (plan.state, plan.result) == (RECOVERED, "plan two recovered at stage 1: the alert resolved")


async def test_an_interrupted_stage_still_firing_after_the_grace_period_has_an_unknown_outcome(store: Store) -> None:
    job = await plan_job(store, "fix")
    started = time.time()
    assert await store.begin_action(job, OWNER, 0, "command", False, started, started + 60) is not None
    await runner(store).step(dataclasses.replace(job, interrupted=1))
    waiting, _ = await jobs_of(store)
    (due,) = [j for j in await store.claim(OWNER, 10, 60, waiting.due_at) if j.kind == PLAN]
    await runner(store).step(due)
    (view,) = await store.incidents(limit=10)
    unknown = "outcome unknown: the receiver stopped while command ran, and the alert still fires 30s later"
    assert [(e.title, e.detail) for e in view.events if e.kind == "verify"] == [
        ("fix stage 1 verification: not yet", unknown)
    ]


async def test_a_plan_without_a_verify_query_is_judged_by_its_actions_even_with_prometheus_set(store: Store) -> None:
    async with aiohttp.ClientSession() as session:
        # nothing listens there: a query would fail and count as not recovered
        prometheus = Verifier(session, "http://127.0.0.1:9", 1.0)
        actions = {plan.name: [build_action(a) for a in plan.actions] for plan in CONFIG.recovery}
        runs = PlanRunner(CONFIG, store, actions, prometheus, ReceiverMetrics(), OWNER, 60.0)
        await runs.step(await plan_job(store, "fix"))
        (due,) = [j for j in await store.claim(OWNER, 10, 60, time.time()) if j.kind == PLAN]
        await runs.step(due)
    (view,) = await store.incidents(limit=10)
    assert [(e.title, e.detail) for e in view.events if e.kind == "verify"] == [
        ("fix stage 1 verification: recovered", "every action of the stage succeeded")
    ]
