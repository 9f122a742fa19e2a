"""Approvals of plan stages: the timeout escalates, a waiting run survives a restart, replicas decide once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from opsloop.receiver.domain import ESCALATED, PENDING, RECOVERED, TIMED_OUT
from opsloop.testsupport.servers import PostgresServer

from tests.receiver.console.conftest import Client, record_plan
from tests.receiver.harness import Receiver, alert, eventually, webhook, write_config
from tests.receiver.store.conftest import fresh_postgres_url

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


async def test_two_replicas_answered_at_once_decide_each_approval_once(
    tmp_path: Path, receivers: Start, postgres_server: PostgresServer
) -> None:
    store = fresh_postgres_url(postgres_server, "approvals")
    stage = {"after": "0s", "approve": "required", "approve_timeout": "10m"}
    replicas = []
    for n in range(2):
        directory = tmp_path / f"replica{n}"
        directory.mkdir()
        plan = record_plan("Risky", tmp_path / "ran", stages=[stage])
        replicas.append(await receivers(write_config(directory, store=store, recovery=[plan])))
    alerts = [alert(f"a{i}", alertname="Risky", svc=f"s{i}") for i in range(5)]
    await asyncio.gather(*(r.post(webhook(*alerts)) for r in replicas))  # an Alertmanager HA pair

    async def all_waiting() -> bool:
        views = (await replicas[0].incidents()).values()
        return len(views) == 5 and all(v.approvals for v in views)

    await eventually(all_waiting, what="five approval requests")
    clients = [Client(r) for r in replicas]
    for n, client in enumerate(clients):
        assert await client.sign_in(f"person-{n}") == 303
    answers = []
    for view in (await replicas[0].incidents()).values():
        for client, decision in zip(clients, ("approve", "reject"), strict=True):
            form = {"csrf": await client.csrf(), "job": str(view.jobs[0].id), "stage": "0"}
            answers.append(client.request("POST", f"/ui/incidents/{view.incident.id}/{decision}", form))
    locations = [headers["Location"] for _, headers, _, _ in await asyncio.gather(*answers)]
    assert sum("already+decided" in where for where in locations) == 5  # one of each pair lost
    await replicas[0].settled(30)
    views = (await replicas[0].incidents()).values()
    approved = {v.incident.labels["svc"] for v in views if v.approvals[0].state == "approved"}
    assert {v.incident.labels["svc"] for v in views if v.jobs[0].state == RECOVERED} == approved
    assert {v.jobs[0].state for v in views if v.incident.labels["svc"] not in approved} <= {ESCALATED}
    ran = (tmp_path / "ran").read_text().split() if (tmp_path / "ran").exists() else []
    assert sorted(ran) == sorted(approved)  # each approved stage ran once, on one replica; rejected ones never
