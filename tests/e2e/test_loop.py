"""The whole loop through real processes: exporter -> Prometheus -> Alertmanager -> receiver -> repair.

Short intervals everywhere (scrape and evaluation 1 s, group_wait 0 s, demo thresholds), so each
scenario takes well under a minute. Step timings are written to the test output.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
from typing import Any

import redis
from opsloop.demo.stack import LoopStack, PlanSettings

from tests.e2e.conftest import StepTimer, until

ALERT = "DLQEntriesIncreasing"


def storm(stack: LoopStack, count: int = 20) -> None:
    client = redis.Redis.from_url(stack.redis.url)
    client.lpush("dlq:emails", *[json.dumps({"id": n, "failed_at": time.time()}) for n in range(count)])


def incident(stack: LoopStack) -> dict[str, Any] | None:
    listing = stack.admin_get("/api/incidents")["incidents"]
    return next((i for i in listing if i["labels"].get("alertname") == ALERT), None)


def slack_texts(stack: LoopStack) -> list[str]:
    return [json.dumps(m.payload) for m in stack.slack.messages]


def mail_subjects(stack: LoopStack) -> list[str]:
    return [str(m["Subject"]) for m in stack.smtp.messages]


def kinds(texts: list[str], word: str) -> list[str]:
    return [t for t in texts if ALERT in t and word in t.upper()]


async def warm_up(stack: LoopStack) -> None:
    """Wait until Prometheus has scraped the empty DLQ, so the burst shows as growth."""
    assert stack.prometheus is not None
    await until(lambda: stack.prometheus is not None and _dlq_series(stack) == 0.0, "a scraped empty DLQ", 60)
    # Prometheus finds Alertmanager about 5 s after it starts: wait until it lists it as active
    await until(lambda: _active_alertmanagers(stack) > 0, "Prometheus to discover Alertmanager", 60)


def _active_alertmanagers(stack: LoopStack) -> int:
    assert stack.prometheus is not None
    with urllib.request.urlopen(f"{stack.prometheus.url}/api/v1/alertmanagers", timeout=5) as resp:
        return len(json.load(resp)["data"]["activeAlertmanagers"])


def _dlq_series(stack: LoopStack) -> float | None:
    assert stack.prometheus is not None
    query = urllib.parse.quote('opsloop_dlq_length{dlq="dlq:emails"}')
    with urllib.request.urlopen(f"{stack.prometheus.url}/api/v1/query?query={query}", timeout=5) as resp:
        result = json.load(resp)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


async def storm_until_received(stack: LoopStack, step_timer: StepTimer) -> LoopStack:
    """Fill the DLQ, then wait (timing each step) until the rule fires and the receiver has the alert."""
    await warm_up(stack)
    step_timer.started = time.monotonic()
    storm(stack)
    await until(lambda: any(a["labels"]["alertname"] == ALERT for a in stack.firing_alerts()), "the alert to fire")
    step_timer.mark("fire")
    await until(lambda: incident(stack) is not None, "the receiver to get the alert from Alertmanager")
    step_timer.mark("receive")
    return stack


async def test_dlq_storm_is_repaired_once_and_people_are_told(loop_stack, step_timer: StepTimer):
    stack = await storm_until_received(await asyncio.to_thread(loop_stack, PlanSettings()), step_timer)
    await until(lambda: any(a["finished_at"] for a in incident(stack)["actions"]), "the requeue action")
    step_timer.mark("act")
    await until(lambda: incident(stack)["plan_runs"][0]["state"] == "recovered", "verification")
    step_timer.mark("verify")
    await until(
        lambda: len(kinds(slack_texts(stack), "RESOLVED")) == 1 and len(kinds(mail_subjects(stack), "RESOLVED")) == 1,
        "the resolved messages",
    )
    step_timer.mark("resolve")

    final = incident(stack)
    assert final["status"] == "resolved"
    assert final["labels"]["dlq"] == "dlq:emails"
    (run,) = final["plan_runs"]  # the plan ran once, however often Alertmanager delivered the alert
    assert run["target"] == "requeue-dlq"
    (action,) = final["actions"]
    assert action["type"] == "dlq_requeue"
    assert action["state"] == "ok"
    assert "moved 20 items dlq:emails -> queue:emails" in action["detail"]
    client = redis.Redis.from_url(stack.redis.url)
    assert client.llen("dlq:emails") == 0
    assert client.llen("queue:emails") == 20

    firing_slack = kinds(slack_texts(stack), "FIRING")
    firing_mail = kinds(mail_subjects(stack), "FIRING")
    assert len(firing_slack) == 1
    assert len(firing_mail) == 1
    assert "dlq:emails" in firing_slack[0]
    assert "dlq:emails" in firing_mail[0]
    assert "dlq:emails" in kinds(slack_texts(stack), "RESOLVED")[0]
    assert not kinds(slack_texts(stack), "ESCALAT")


async def test_failed_recovery_walks_every_stage_and_escalates(loop_stack, step_timer: StepTimer):
    plan = PlanSettings(stages=["0s", "2s", "4s"], verify_after="1s", broken=True)
    stack = await storm_until_received(await asyncio.to_thread(loop_stack, plan), step_timer)
    await until(lambda: len([a for a in incident(stack)["actions"] if a["finished_at"]]) == 3, "three attempts")
    step_timer.mark("act")
    await until(lambda: incident(stack)["plan_runs"][0]["state"] == "escalated", "escalation")
    step_timer.mark("escalate")
    await until(lambda: kinds(slack_texts(stack), "ESCALAT") and kinds(mail_subjects(stack), "ESCALAT"), "escalations")
    step_timer.mark("notify")

    final = incident(stack)
    assert [a["stage"] for a in final["actions"]] == [0, 1, 2]
    assert all(a["state"] != "ok" for a in final["actions"])
    escalation = kinds(slack_texts(stack), "ESCALAT")
    assert len(escalation) == 1
    assert "dlq:emails" in escalation[0]
    assert redis.Redis.from_url(stack.redis.url).llen("dlq:emails") == 20  # nothing was moved
    assert len(kinds(mail_subjects(stack), "ESCALAT")) == 1
