"""Plan steps that end a run, on a real SQLite store: the notes, notifications and counts each outcome leaves.

Like ``test_recovery_steps.py``, each test drives ``PlanRunner.step`` on a job in the state under test;
the oracle is the store's database, read with SQL.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
from opsloop.receiver.config import ReceiverConfig
from opsloop.receiver.domain import DELIVERY, ESCALATED, PENDING, PLAN, RECOVERED, REJECTED, SKIPPED, RoutedAlert
from opsloop.receiver.metrics import ReceiverMetrics
from opsloop.receiver.store import Store

from tests.receiver.test_recovery_steps import ALERT, CONFIG, OWNER, jobs_of, plan_job, runner
from tests.receiver.test_recovery_steps import store as store  # the fixture: a fresh SQLite store


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    """The store's own rows, read with SQL: the oracle the tests below compare with."""
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


def plan_config(**plan: object) -> ReceiverConfig:
    """CONFIG's notifiers and routes with one plan ``fix`` for alert A, its keys overridden by ``plan``."""
    fix = {
        "name": "fix",
        "match": {"alertname": "A"},
        "actions": [{"type": "command", "argv": [sys.executable, "-c", "pass"], "timeout": "5s"}],
        **plan,
    }
    return CONFIG.model_copy(update={"recovery": ReceiverConfig.model_validate({
        "auth": {"bearer_token": "t"}, "recovery": [fix]}).recovery})  # fmt: skip


async def test_the_end_of_a_run_is_logged_with_its_stored_outcome(
    store: Store, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO, "opsloop.receiver.recovery")
    job = await plan_job(store, "fix")
    await runner(store).step(dataclasses.replace(job, interrupted=5))
    ended = [r for r in caplog.records if r.getMessage() == "plan run ended"]
    (stored,) = rows(tmp_path / "r.db", "SELECT state, result FROM jobs WHERE kind = 'plan'")
    assert stored[0] == ESCALATED
    assert [(r.outcome, r.result, r.job, r.plan) for r in ended] == [(*stored, job.id, "fix")]


async def test_an_unknown_outcome_names_every_interrupted_action(store: Store, tmp_path: Path) -> None:
    job = await plan_job(store, "two")
    started = time.time()
    for position in range(2):  # both actions of the stage had started when the worker died
        assert await store.begin_action(job, OWNER, position, "command", False, started, started + 60) is not None
    await runner(store).step(dataclasses.replace(job, interrupted=1))
    waiting, _ = await jobs_of(store)
    (due,) = [j for j in await store.claim(OWNER, 10, 60, waiting.due_at) if j.kind == PLAN]
    await runner(store).step(due)
    assert rows(tmp_path / "r.db", "SELECT state FROM actions ORDER BY position") == [("interrupted",)] * 2
    assert rows(tmp_path / "r.db", "SELECT title, detail FROM events WHERE kind = 'verify'") == [(
        "two stage 1 verification: not yet",
        "outcome unknown: the receiver stopped while command, command ran, and the alert still fires 30s later",
    )]  # fmt: skip


async def test_a_stage_that_recorded_no_action_is_not_verified_by_the_earlier_stages(
    store: Store, tmp_path: Path
) -> None:
    config = plan_config(stages=["0s", "10m"])
    await runner(store, config=config).step(await plan_job(store, "fix"))  # stage 1 runs, and its action succeeds
    # stage 2 comes to verification without an action of its own (its attempt never got to one)
    (claimed,) = [j for j in await store.claim(OWNER, 10, 60, time.time()) if j.kind == PLAN]
    assert await store.reschedule(claimed.id, OWNER, due_at=time.time(), now=time.time(), stage=1, phase="verify")
    (due,) = [j for j in await store.claim(OWNER, 10, 60, time.time()) if j.kind == PLAN]
    await runner(store, config=config).step(due)
    assert rows(tmp_path / "r.db", "SELECT stage, state FROM actions") == [(0, "ok")]
    assert rows(tmp_path / "r.db", "SELECT title, detail FROM events WHERE kind = 'verify'") == [
        ("fix stage 2 verification: not yet", "an action of the stage did not succeed")
    ]


async def test_a_run_that_lost_its_lease_is_neither_ended_nor_counted(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    job = await plan_job(store, "fix")
    with closing(sqlite3.connect(tmp_path / "r.db")) as db:  # another replica took the job over meanwhile
        db.execute("UPDATE jobs SET lease_owner = 'other' WHERE kind = 'plan'")
        db.commit()
    metrics = ReceiverMetrics()
    caplog.set_level(logging.INFO, "opsloop.receiver.recovery")
    await runner(store, metrics).step(dataclasses.replace(job, interrupted=5))  # would escalate, owning it
    assert rows(tmp_path / "r.db", "SELECT state, lease_owner, result FROM jobs") == [(PENDING, "other", "")]
    assert [r.getMessage() for r in caplog.records if r.name == "opsloop.receiver.recovery"] == []
    assert (
        metrics.registry.get_sample_value("opsloop_receiver_plan_runs_total", {"plan": "fix", "outcome": ESCALATED})
        is None
    )


@pytest.mark.parametrize(("stage", "note"), [
    (0, "plan fix did not run: automation paused (all plans): maintenance"),
    (1, "plan fix stopped: automation paused (all plans): maintenance"),
])  # fmt: skip
async def test_a_pause_skips_a_first_stage_and_stops_a_later_one_telling_the_routes(
    store: Store, tmp_path: Path, stage: int, note: str
) -> None:
    config = plan_config(stages=["0s", "10m"])
    job = await plan_job(store, "fix")
    if stage:  # the run comes to its second stage: move it there as its first stage's verification would
        assert await store.reschedule(job.id, OWNER, due_at=time.time(), now=time.time(), stage=1)
        (job,) = [j for j in await store.claim(OWNER, 10, 60, time.time()) if j.kind == PLAN]
    await store.pause("*", "maintenance", time.time(), "alice")
    await runner(store, config=config).step(job)
    assert rows(
        tmp_path / "r.db", "SELECT kind, state, stage, target, notify_kind, note, result FROM jobs ORDER BY id"
    ) == [
        (PLAN, SKIPPED, stage, "fix", None, "", note),
        (DELIVERY, PENDING, 0, "slack/oncall", "firing", note, ""),
    ]
    assert rows(tmp_path / "r.db", "SELECT COUNT(*) FROM actions") == [(0,)]


async def test_an_escalation_counts_the_actions_that_did_not_succeed(store: Store, tmp_path: Path) -> None:
    ok, failing = (
        {"type": "command", "argv": [sys.executable, "-c", code], "timeout": "5s"} for code in ("pass", "exit(3)")
    )
    config = plan_config(actions=[ok, ok, failing], escalate=["slack/oncall"])
    await runner(store, config=config).step(await plan_job(store, "fix"))
    (due,) = [j for j in await store.claim(OWNER, 10, 60, time.time()) if j.kind == PLAN]
    await runner(store, config=config).step(due)  # verified at once: the only stage did not succeed
    assert rows(tmp_path / "r.db", "SELECT position, state FROM actions") == [(0, "ok"), (1, "ok"), (2, "failed")]
    note = (
        "plan fix ran all 1 stages (3 actions, 1 not ok) and the problem remains: "
        "an action of the stage did not succeed"
    )
    assert rows(tmp_path / "r.db", "SELECT kind, state, notify_kind, result, note FROM jobs ORDER BY id") == [
        (PLAN, ESCALATED, None, note, ""),
        (DELIVERY, PENDING, "escalation", "", note),
    ]


async def resolve(store: Store) -> None:
    resolved = dataclasses.replace(ALERT, status="resolved", ends_at="2030-01-01T00:05:00Z")
    await store.ingest([RoutedAlert(resolved, notifiers=(), plans=[])], "", 0, time.time())


async def test_a_run_interrupted_too_often_whose_alert_resolved_ends_recovered(store: Store, tmp_path: Path) -> None:
    job = await plan_job(store, "fix")
    await resolve(store)
    await runner(store).step(dataclasses.replace(job, interrupted=5))
    assert rows(tmp_path / "r.db", "SELECT kind, state, result FROM jobs") == [(PLAN, RECOVERED, "the alert resolved")]


async def test_a_declined_stage_whose_alert_resolved_meanwhile_ends_recovered(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = await plan_job(store, "ask")
    await runner(store).step(job)  # asks for approval
    assert await store.decide_approval(job.id, 0, REJECTED, "alice", "", time.time())
    (decided,) = [j for j in await store.claim(OWNER, 10, 60, time.time()) if j.kind == PLAN]
    read = store.approval

    async def resolved_while_read(job_id: int, stage: int) -> object:
        await resolve(store)  # the resolved webhook commits after the gate, before the run ends
        return await read(job_id, stage)

    monkeypatch.setattr(store, "approval", resolved_while_read)
    await runner(store).step(decided)
    assert rows(tmp_path / "r.db", "SELECT kind, state, notify_kind, result FROM jobs ORDER BY id") == [
        (PLAN, RECOVERED, None, "the alert resolved"),
        (DELIVERY, PENDING, "approval_needed", ""),
    ]
