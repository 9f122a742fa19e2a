"""Approvals, timeline events, console sessions, incident filters and statistics facts, on both backends."""

from __future__ import annotations

import asyncio

from opsloop.receiver.domain import APPROVED, GLOBAL, PENDING, REJECTED, TIMED_OUT, Alert, NewDelivery, RoutedAlert
from opsloop.receiver.store import IncidentFilter, Store

NOW = 1_800_000_000.0


def routed(fp: str, plan: str | None = "fix", **labels: str) -> RoutedAlert:
    alert = Alert(fingerprint=fp, starts_at="2030-01-01T00:00:00Z", status="firing", labels=labels)
    return RoutedAlert(alert, plans=[(plan, {})] if plan else [])


async def waiting_job(store: Store) -> int:
    await store.ingest([routed("fp1", alertname="Risky")], "", 0, NOW)
    (job,) = await store.claim("w", 10, 30, NOW)
    told = [NewDelivery("delivery|email/a|fp1|x|approval_needed|approve:0", "email/a", "approval_needed", "waits")]
    assert await store.request_approval(job, "w", NOW, NOW + 600, told)
    assert not await store.request_approval(job, "other", NOW, NOW + 600, told)  # not the lease owner
    return job.id


async def test_an_approval_is_decided_once_even_when_everyone_decides_at_once(store: Store) -> None:
    job_id = await waiting_job(store)
    approval = await store.approval(job_id, 0)
    assert approval is not None
    assert (approval.state, approval.deadline) == (PENDING, NOW + 600)
    due = await store.claim("w", 10, 30, NOW + 1)
    assert [j.notify_kind for j in due] == ["approval_needed"]  # the message goes out; the run waits
    decisions = [(APPROVED, "ann"), (REJECTED, "bob"), (TIMED_OUT, "")] * 4
    won = await asyncio.gather(*(store.decide_approval(job_id, 0, s, who, "", NOW + 2) for s, who in decisions))
    assert sum(won) == 1
    decided = await store.approval(job_id, 0)
    assert decided is not None
    winner = decisions[won.index(True)]
    assert (decided.state, decided.decided_by, decided.decided_at) == (*winner, NOW + 2)
    due = [j for j in await store.claim("w", 10, 30, NOW + 2) if j.id == job_id]
    assert len(due) == 1  # the decision made the run due at once
    (view,) = await store.incidents(limit=1, incident_id=due[0].incident.id)
    assert [(a.stage, a.state) for a in view.approvals] == [(0, winner[0])]
    assert [j.notify_kind for j in view.jobs if j.kind == "delivery"] == ["approval_needed"]


async def test_events_pauses_and_runs_by_hand_land_in_the_timeline(store: Store) -> None:
    await store.pause("fix", "deploying", NOW - 60, "ann")  # before the incident: still shown, it applied
    await store.ingest([routed("fp1", alertname="A")], "", 0, NOW)
    (job,) = await store.claim("w", 10, 30, NOW)
    await store.record_event(
        job.incident.id, job.id, "verify", "fix stage 1 verification: not yet", "q -> [0]", NOW + 1
    )
    await store.reschedule(job.id, "w", due_at=NOW + 5, now=NOW + 5)
    assert await store.resume("fix", NOW + 2, "bob")
    await store.pause(GLOBAL, "later", NOW + 3600, "carl")  # after the incident's last change: not shown
    (view,) = await store.incidents(limit=1, incident_id=job.incident.id)
    assert [(e.kind, e.title, e.actor) for e in view.events] == [
        ("verify", "fix stage 1 verification: not yet", ""),
        ("pause", "paused plan fix", "ann"),
        ("resume", "resumed plan fix", "bob"),
    ]
    started = "2030-01-02T00:00:00Z"
    run = await store.start_manual_run("fix", {"svc": "a"}, {"svc": "a"}, False, "r1", NOW + 9, started, "dana")
    (manual,) = await store.incidents(limit=1, incident_id=run.incident_id)
    assert [(e.kind, e.title, e.detail, e.actor, e.job_id) for e in manual.events if e.incident_id] == [
        ("manual", "ran plan fix by hand", "svc=a", "dana", run.job_id)
    ]


async def test_sessions_expire_and_end(store: Store) -> None:
    await store.create_session("d1", "ann", NOW, NOW + 100)
    assert await store.session("d1", NOW + 99) == ("ann", NOW + 100)
    assert await store.session("d1", NOW + 100) is None  # expired
    assert await store.session("other", NOW) is None
    await store.create_session("d2", "bob", NOW, NOW + 100)
    await store.end_session("d2")
    assert await store.session("d2", NOW) is None


async def test_filters_match_labels_exactly_and_page(store: Store) -> None:
    tricky = '"alertname":"Db"'  # a value that contains what the filter looks for must not match
    first = [routed("a", alertname="Db", severity="critical"), routed("b", None, alertname="DbX"),
             routed("c", None, alertname="Web", note=tricky), routed("d", alertname="db")]  # fmt: skip
    await store.ingest(first, "", 0, NOW)
    await store.ingest([routed("e", alertname="Db", severity="warning")], "", 0, NOW + 100)

    async def fingerprints(found: IncidentFilter, limit: int = 10, offset: int = 0) -> list[str]:
        views = await store.incidents(limit=limit, offset=offset, filter=found)
        assert await store.count_incidents(found) >= len(views)
        return [v.incident.fingerprint for v in views]

    assert await fingerprints(IncidentFilter(alertname="Db")) == ["e", "a"]
    assert await store.count_incidents(IncidentFilter(alertname="Db")) == 2
    assert await fingerprints(IncidentFilter(alertname="Db", severity="critical")) == ["a"]
    assert await fingerprints(IncidentFilter(plan="fix")) == ["e", "d", "a"]
    assert await fingerprints(IncidentFilter(since=NOW + 50)) == ["e"]
    assert await fingerprints(IncidentFilter(until=NOW + 50)) == ["d", "c", "b", "a"]
    assert await fingerprints(IncidentFilter(), limit=2, offset=2) == ["c", "b"]
    assert await store.count_incidents(IncidentFilter(alertname='x"); DROP TABLE incidents; --')) == 0
    assert await store.count_incidents(IncidentFilter()) == 5


async def test_stats_facts_count_runs_and_actions_in_the_range(store: Store) -> None:
    await store.ingest([routed("a", alertname="A"), routed("b", alertname="B")], "", 0, NOW)
    await store.ingest([routed("old", alertname="A")], "", 0, NOW - 10 * 86400)
    jobs = {j.incident.fingerprint: j for j in await store.claim("w", 10, 30, NOW)}
    for n, state in enumerate(("ok", "failed")):
        action = await store.begin_action(jobs["a"], "w", n, "command", False, NOW + 1 + n, NOW + 60)
        assert action is not None
        await store.end_action(action, state == "ok", "", NOW + 2 + n)
    dry = await store.begin_action(jobs["b"], "w", 0, "command", True, NOW + 5, NOW + 60)
    assert dry is not None
    await store.end_action(dry, True, "", NOW + 6)
    facts = await store.stats_facts(NOW - 1, NOW + 1)
    assert sorted((i.alertname, i.received_at) for i in facts.incidents) == [("A", NOW), ("B", NOW)]
    runs = {r.incident_id: r for r in facts.runs}
    by_fp = {i.id: i.alertname for i in facts.incidents}
    assert {by_fp[i]: (r.actions, r.first_action_at) for i, r in runs.items()} == {
        "A": ({"ok": 1, "failed": 1}, NOW + 1), "B": ({"dry_run": 1}, NOW + 5),
    }  # fmt: skip
