"""The store's reads on both backends: lease holders, queue ages, incident views and statistics facts."""

from __future__ import annotations

from opsloop.receiver.domain import DELIVERY, GLOBAL, PLAN, Alert, NewDelivery, RoutedAlert
from opsloop.receiver.store import IncidentFilter, StatsIncident, StatsRun, Store

NOW = 1_800_000_000.0
STARTS = "2030-01-01T00:00:00Z"


def routed(fp: str, plan: str | None = "fix", notifiers: tuple[str, ...] = (), **labels: str) -> RoutedAlert:
    alert = Alert(fingerprint=fp, starts_at=STARTS, status="firing", labels=labels)
    return RoutedAlert(alert, plans=[(plan, {})] if plan else [], notifiers=notifiers)


async def test_lease_owners_are_the_holders_of_live_leases_on_pending_work_each_once(store: Store) -> None:
    await store.ingest([routed(f"fp{n}") for n in range(4)], "", 0, NOW)
    assert len(await store.claim("b", 2, 30, NOW)) == 2
    assert len(await store.claim("c", 1, 10, NOW)) == 1
    assert len(await store.claim("a", 1, 60, NOW)) == 1
    assert await store.lease_owners(NOW + 10) == ["a", "b", "c"]  # a lease ending now is still held
    assert await store.lease_owners(NOW + 11) == ["a", "b"]
    assert await store.lease_owners(NOW + 61) == []


async def test_pauses_are_listed_by_scope_with_reason_and_time(store: Store) -> None:
    await store.pause("fix", "deploying", NOW + 1, "ann")
    await store.pause(GLOBAL, "maintenance", NOW, "bob")
    assert list((await store.pauses()).items()) == [(GLOBAL, ("maintenance", NOW)), ("fix", ("deploying", NOW + 1))]


async def test_queue_ages_count_work_not_due_yet_without_an_age_and_are_never_negative(store: Store) -> None:
    assert await store.queue_stats(NOW) == {PLAN: (0, 0.0), DELIVERY: (0, 0.0)}  # both kinds, even when idle
    await store.ingest([routed("plan")], "", 0, NOW)
    assert await store.queue_stats(NOW) == {PLAN: (1, 0.0), DELIVERY: (0, 0.0)}  # due this very second
    assert await store.queue_stats(NOW - 5) == {PLAN: (1, 0.0), DELIVERY: (0, 0.0)}  # pending, not due yet
    await store.ingest([routed("told", None, ("slack/oncall",))], "", 0, NOW + 10)
    (job,) = [j for j in await store.claim("w", 10, 30, NOW + 10) if j.kind == DELIVERY]
    assert await store.reschedule(job.id, "w", due_at=NOW + 70, now=NOW + 10, attempted=True, result="503")
    # a clock set back: the delivery, queued at NOW + 10, waits from the future, not for -4 s
    assert (await store.queue_stats(NOW + 6))[DELIVERY] == (1, 0.0)


async def test_an_incident_view_holds_its_own_jobs_actions_approvals_and_events(store: Store) -> None:
    quiet = routed("quiet", None, alertname="Q")  # neither plan nor notifier: an incident without jobs
    await store.ingest([quiet, routed("a", alertname="A"), routed("b", alertname="B")], "", 0, NOW)
    jobs = {j.incident.fingerprint: j for j in await store.claim("w", 10, 60, NOW)}
    assert sorted(jobs) == ["a", "b"]
    for fp, action_type in (("a", "command"), ("b", "http")):
        assert await store.begin_action(jobs[fp], "w", 0, action_type, False, NOW + 1, NOW + 60) is not None
    told = [NewDelivery("delivery|email/a|b|x|approval_needed|approve:0", "email/a", "approval_needed", "waits")]
    assert await store.request_approval(jobs["b"], "w", NOW + 2, NOW + 600, told)
    await store.record_event(jobs["a"].incident.id, None, "note", "looked at", "", NOW + 3, "ann")

    (empty,) = await store.incidents(filter=IncidentFilter(alertname="Q"))
    assert (empty.incident.fingerprint, empty.jobs, empty.actions, empty.approvals, empty.events) == (
        "quiet", [], [], [], [],
    )  # fmt: skip
    views = {v.incident.fingerprint: v for v in await store.incidents(status="firing")}
    assert sorted(views) == ["a", "b", "quiet"]
    assert [(j.kind, j.id) for j in views["a"].jobs] == [(PLAN, jobs["a"].id)]
    assert [(a.job_id, a.type) for a in views["a"].actions] == [(jobs["a"].id, "command")]
    assert [(a.job_id, a.type) for a in views["b"].actions] == [(jobs["b"].id, "http")]
    assert views["a"].approvals == []
    assert [(a.job_id, a.stage) for a in views["b"].approvals] == [(jobs["b"].id, 0)]
    assert [(e.kind, e.title, e.actor) for e in views["a"].events] == [("note", "looked at", "ann")]
    assert views["b"].events == []
    assert await store.incidents(status="resolved") == []


async def test_statistics_facts_leave_runs_by_hand_out_and_read_a_missing_alertname_as_empty(store: Store) -> None:
    await store.ingest([routed("nameless"), routed("idle", alertname="I")], "", 0, NOW)
    await store.start_manual_run("fix", {"q": "a"}, {"q": "a"}, False, "r1", NOW, STARTS, "ann")
    jobs = {j.incident.fingerprint: j for j in await store.claim("w", 10, 60, NOW)}
    dry = await store.begin_action(jobs["nameless"], "w", 0, "command", True, NOW + 2, NOW + 60)
    assert dry is not None
    await store.end_action(dry, False, "exit 1", NOW + 3)  # a dry run that failed counts as failed
    manual = await store.begin_action(jobs["manual-r1"], "w", 0, "command", False, NOW + 1, NOW + 60)
    assert manual is not None

    facts = await store.stats_facts(NOW, NOW + 1)
    ids = {fp: j.incident.id for fp, j in jobs.items()}
    assert sorted(facts.incidents, key=lambda i: i.id) == sorted(
        [StatsIncident(ids["nameless"], "", STARTS, NOW, None), StatsIncident(ids["idle"], "I", STARTS, NOW, None)],
        key=lambda i: i.id,
    )
    assert sorted(facts.runs, key=lambda r: r.incident_id) == sorted(
        [StatsRun(ids["nameless"], "fix", "pending", None, NOW + 2, {"failed": 1}),
         StatsRun(ids["idle"], "fix", "pending", None, None, {})],
        key=lambda r: r.incident_id,
    )  # fmt: skip
