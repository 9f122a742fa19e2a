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
from opsloop.receiver.domain import DELIVERY, ESCALATED, PLAN, Alert, RoutedAlert
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
                  "escalate": ["slack/oncall"]}],
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


def runner(store: Store) -> PlanRunner:
    actions = {plan.name: [build_action(a) for a in plan.actions] for plan in CONFIG.recovery}
    return PlanRunner(CONFIG, store, actions, None, ReceiverMetrics(), OWNER, 60.0)


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
