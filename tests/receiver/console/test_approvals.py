"""Approvals of plan stages: the timeout escalates, and a waiting run survives a restart of the receiver."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from opsloop.receiver.domain import ESCALATED, PENDING, RECOVERED, TIMED_OUT

from tests.receiver.console.conftest import Client, record_plan
from tests.receiver.harness import Receiver, alert, eventually, webhook, write_config

Start = Callable[[Path], Awaitable[Receiver]]


def risky(tmp_path: Path, timeout: str) -> Path:
    stage = {"after": "0s", "approve": "required", "approve_timeout": timeout}
    return write_config(tmp_path, recovery=[record_plan("Risky", tmp_path / "ran", stages=[stage])])


async def test_without_a_decision_the_plan_escalates(tmp_path: Path, receivers: Start) -> None:
    receiver = await receivers(risky(tmp_path, "1s"))
    assert (await receiver.post(webhook(alert("t1", alertname="Risky", svc="web"))))[0] == 200
    await receiver.settled()
    (view,) = (await receiver.incidents()).values()
    (run,) = view.jobs
    assert run.state == ESCALATED
    assert run.result == "plan Risky stopped before stage 1: no one approved stage 1: no decision within 1s"
    assert [(a.state, a.decided_by) for a in view.approvals] == [(TIMED_OUT, "")]
    assert view.approvals[0].decided_at is not None
    assert view.approvals[0].decided_at >= view.approvals[0].deadline
    assert not (tmp_path / "ran").exists()


async def test_a_waiting_run_survives_a_restart_and_runs_once_approved(tmp_path: Path, receivers: Start) -> None:
    config = risky(tmp_path, "10m")
    first = await receivers(config)
    assert (await first.post(webhook(alert("r1", alertname="Risky", svc="api"))))[0] == 200

    async def waiting() -> bool:
        views = list((await first.incidents()).values())
        return bool(views and views[0].approvals)

    await eventually(waiting, what="the approval request")
    await first.stop()
    second = await receivers(config)  # same store: the request is still there, nothing ran
    (view,) = (await second.incidents()).values()
    assert [a.state for a in view.approvals] == [PENDING]
    assert view.jobs[0].state == PENDING
    client = Client(second)
    assert await client.sign_in("erin") == 303
    page = (await client.request("GET", f"/ui/incidents/{view.incident.id}"))[2]
    assert "Plan Risky waits for approval before stage 1" in page
    form = {"csrf": await client.csrf(), "job": str(view.jobs[0].id), "stage": "0", "reason": "ok"}
    status, headers, _, _ = await client.request("POST", f"/ui/incidents/{view.incident.id}/approve", form)
    assert (status, headers["Location"]) == (303, f"/ui/incidents/{view.incident.id}?msg=stage+1+approved")
    await second.settled()
    (view,) = (await second.incidents()).values()
    assert view.jobs[0].state == RECOVERED
    assert (tmp_path / "ran").read_text() == "api\n"
    status, headers, _, _ = await client.request("POST", f"/ui/incidents/{view.incident.id}/reject", form)
    assert "already+decided" in headers["Location"]  # a second answer changes nothing
    (view,) = (await second.incidents()).values()
    assert [(a.state, a.decided_by, a.reason) for a in view.approvals] == [("approved", "erin (admin token)", "ok")]


async def test_an_alert_that_resolves_while_waiting_needs_no_decision(tmp_path: Path, receivers: Start) -> None:
    receiver = await receivers(risky(tmp_path, "10m"))
    assert (await receiver.post(webhook(alert("w1", alertname="Risky", svc="db"))))[0] == 200

    async def waiting() -> bool:
        views = list((await receiver.incidents()).values())
        return bool(views and views[0].approvals)

    await eventually(waiting, what="the approval request")
    resolved = alert("w1", status="resolved", ends="2030-01-02T03:10:00Z", alertname="Risky", svc="db")
    assert (await receiver.post(webhook(resolved)))[0] == 200
    await receiver.settled()
    (view,) = (await receiver.incidents()).values()
    assert (view.jobs[0].state, view.jobs[0].result) == (RECOVERED, "the alert resolved before the attempt")
    client = Client(receiver)
    await client.sign_in()
    page = (await client.request("GET", f"/ui/incidents/{view.incident.id}"))[2]
    assert "waits for approval" not in page
    assert "Risky: recovered" in page
    form = {"csrf": await client.csrf(), "job": str(view.jobs[0].id), "stage": "0", "reason": "late"}
    _, headers, _, _ = await client.request("POST", f"/ui/incidents/{view.incident.id}/approve", form)
    assert "already+decided" in headers["Location"]
    assert not (tmp_path / "ran").exists()
