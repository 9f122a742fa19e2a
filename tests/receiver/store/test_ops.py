"""Store operations on both backends: idempotent ingest, leases, gating and history."""

from __future__ import annotations

import dataclasses

import pytest
from opsloop.receiver.domain import (
    DELIVERY,
    GLOBAL,
    PENDING,
    PLAN,
    REPLACED,
    STORM_GUARD,
    Alert,
    Gate,
    Job,
    NewDelivery,
    Outcome,
    RoutedAlert,
)
from opsloop.receiver.store import Store, StoreUnavailable

NOW = 1_800_000_000.0
OPEN_GATE = Gate(cooldown=0, per_hour=None, per_day=None, breaker_max=100, breaker_window=600, first=True)


def alert(fp: str = "fp1", status: str = "firing", **kw: object) -> RoutedAlert:
    """An alert of a webhook as routing hands it to the store; ``kw`` sets the routing decision."""
    instance = Alert(
        fingerprint=fp, starts_at="2030-01-01T00:00:00Z", status=status, labels={"alertname": "A", "fp": fp},
        annotations={"summary": "s"}, ends_at=None, generator_url="http://g",
    )  # fmt: skip
    return RoutedAlert(instance, **{"notifiers": ("slack/oncall",), **kw})  # type: ignore[arg-type]


async def claim_plan(store: Store, now: float) -> Job:
    """The one plan job due now (deliveries queued by earlier steps are claimed too and left leased)."""
    (job,) = [j for j in await store.claim("w", 50, 30, now) if j.kind == PLAN]
    return job


def skipped(reason: str, tripped: bool) -> Outcome:
    return Outcome("skipped", reason, (NewDelivery(f"k-{reason}", "slack/oncall", "firing", reason),))


async def test_ingest_twice_creates_work_once(store: Store) -> None:
    assert await store.ingest([alert(), alert("fp2")], "http://am", 0, NOW) == 2
    assert await store.ingest([alert(), alert("fp2")], "http://am", 3, NOW + 1) == 2
    views = await store.incidents()
    assert [v.incident.fingerprint for v in views] == ["fp2", "fp1"]
    assert views[0].incident.truncated_alerts == 3
    assert [(j.kind, j.target, j.notify_kind) for j in views[1].jobs] == [(DELIVERY, "slack/oncall", "firing")]


async def test_plan_alert_notifies_routes_and_resolved_follows(store: Store) -> None:
    await store.ingest([alert(plans=[("fix", {"dlq": "dlq:a"})])], "", 0, NOW)
    await store.ingest([alert(status="resolved", plans=[("fix", {})])], "", 0, NOW + 5)
    (view,) = await store.incidents()
    assert sorted((j.kind, j.notify_kind or "") for j in view.jobs) == [
        (DELIVERY, "firing"), (DELIVERY, "resolved"), (PLAN, ""),
    ]  # fmt: skip


async def test_plan_alert_holds_route_notification_and_resolved_reaches_notified(store: Store) -> None:
    await store.ingest([alert(plans=[("fix", {"dlq": "dlq:a"})], notify_firing=False)], "", 0, NOW)
    await store.ingest([alert("fp2")], "", 0, NOW)
    await store.ingest(
        [alert(status="resolved", plans=[("fix", {})], notify_firing=False), alert("fp2", status="resolved")],
        "", 0, NOW + 5,
    )  # fmt: skip
    by_fp = {v.incident.fingerprint: v for v in await store.incidents()}
    assert by_fp["fp1"].incident.status == "resolved"
    assert [(j.kind, j.values) for j in by_fp["fp1"].jobs] == [(PLAN, {"dlq": "dlq:a"})]
    assert [j.notify_kind for j in by_fp["fp2"].jobs] == ["firing", "resolved"]


async def test_late_firing_does_not_reopen_and_unseen_resolved_notifies_routes(store: Store) -> None:
    await store.ingest([alert(status="resolved")], "", 0, NOW)
    await store.ingest([alert()], "", 0, NOW + 1)
    (view,) = await store.incidents()
    assert view.incident.status == "resolved"
    assert [j.notify_kind for j in view.jobs] == ["resolved"]


async def test_claim_leases_and_expired_lease_counts_interruption(store: Store) -> None:
    await store.ingest([alert(), alert("fp2")], "", 0, NOW)
    first = await store.claim("a", 1, 30, NOW)
    assert len(first) == 1
    second = await store.claim("b", 10, 30, NOW)
    assert len(second) == 1
    assert second[0].id != first[0].id
    assert await store.claim("c", 10, 30, NOW + 10) == []
    retaken = await store.claim("c", 10, 30, NOW + 31)
    assert sorted(j.id for j in retaken) == sorted([first[0].id, second[0].id])
    assert all(j.interrupted == 1 for j in retaken)
    assert not await store.extend_lease(first[0].id, "a", NOW + 100)
    assert await store.reschedule(retaken[0].id, "c", due_at=NOW + 60, now=NOW + 31, attempted=True)
    assert [j.id for j in await store.claim("d", 10, 30, NOW + 61)] == [retaken[0].id]


async def test_finish_queues_deliveries_once_and_rejects_lost_lease(store: Store) -> None:
    await store.ingest([alert(plans=[("fix", {})], notify_firing=False)], "", 0, NOW)
    (job,) = await store.claim("a", 10, 30, NOW)
    outcome = Outcome("escalated", "all stages failed", (NewDelivery("esc", "email/oncall", "escalation"),))
    assert await store.finish(job, "b", NOW, lambda status: outcome) is None
    assert await store.finish(job, "a", NOW, lambda status: outcome) == outcome
    (view,) = await store.incidents()
    assert [(j.state, j.target) for j in view.jobs] == [("escalated", "fix"), ("pending", "email/oncall")]


async def test_gate_cooldown_caps_and_breaker(store: Store) -> None:
    gate = Gate(cooldown=300, per_hour=2, per_day=None, breaker_max=3, breaker_window=600, first=True)
    results = []
    for n in range(3):
        fp = f"fp{n}"
        await store.ingest([alert(fp, plans=[("fix", {"q": "a"})])], "", 0, NOW + n)
        job = await claim_plan(store, NOW + n)
        results.append(await store.gate(job, "w", gate, NOW + n, skipped))
        if results[-1] is None:
            action = await store.begin_action(job, "w", 0, "redis_set", False, NOW + n, NOW + 100)
            assert action is not None
            await store.end_action(action, True, "done", NOW + n)
            await store.finish(job, "w", NOW + n, lambda status: Outcome("recovered", "ok"))
    assert results[0] is None
    assert results[1] is not None
    assert results[1].result.startswith("cooldown")
    # Other label values are outside the cooldown but the hourly cap counts every run of the plan.
    gate2 = Gate(cooldown=300, per_hour=1, per_day=None, breaker_max=3, breaker_window=600, first=True)
    await store.ingest([alert("fp9", plans=[("fix", {"q": "b"})])], "", 0, NOW + 10)
    job = await claim_plan(store, NOW + 10)
    capped = await store.gate(job, "w", gate2, NOW + 10, skipped)
    assert capped is not None
    assert capped.result == "max_runs: 1 runs per hour reached"
    for n in range(2):  # two more actions trip the breaker (3 within the window)
        await store.ingest([alert(f"b{n}", plans=[("other", {})])], "", 0, NOW + 20 + n)
        job = await claim_plan(store, NOW + 20 + n)
        assert await store.gate(job, "w", OPEN_GATE, NOW + 20 + n, skipped) is None
        await store.begin_action(job, "w", 0, "http", False, NOW + 20 + n, NOW + 100)
    await store.ingest([alert("b9", plans=[("other", {})])], "", 0, NOW + 30)
    job = await claim_plan(store, NOW + 30)
    tripped = await store.gate(
        job, "w", Gate(0, None, None, breaker_max=3, breaker_window=600, first=False), NOW + 30, skipped
    )
    assert tripped is not None
    assert "circuit breaker: 3 actions" in tripped.result
    (view,) = await store.incidents(limit=1, incident_id=job.incident.id)
    assert [(e.kind, e.title, e.actor) for e in view.events] == [("pause", "paused all plans", "circuit breaker")]
    assert GLOBAL in await store.pauses()


async def test_manual_run_bypasses_pause_and_actions_are_recorded(store: Store) -> None:
    await store.pause(GLOBAL, "maintenance", NOW, "ops")
    run = await store.start_manual_run("fix", {"q": "a"}, {"q": "a"}, True, "r1", NOW, "2030-01-01T00:00:00Z", "ann")
    (job,) = await store.claim("w", 10, 30, NOW)
    assert (job.id, job.incident.id, job.manual, job.dry_run, job.values) == (
        run.job_id, run.incident_id, True, True, {"q": "a"},
    )  # fmt: skip
    assert await store.gate(job, "w", OPEN_GATE, NOW, skipped) is None
    action = await store.begin_action(job, "w", 0, "redis_set", True, NOW, NOW + 60)
    assert action is not None
    assert await store.interrupt_actions(job.id, 0, NOW + 1) == 1
    (record,) = await store.actions_of(job.id)
    assert (record.state, record.dry_run, record.plan) == ("interrupted", True, "fix")
    assert await store.resume(GLOBAL, NOW + 2, "ops")
    assert not await store.resume(GLOBAL, NOW + 3, "ops")


async def test_queue_stats(store: Store) -> None:
    await store.ingest([alert(), alert("fp2", plans=[("fix", {})], notify_firing=False)], "", 0, NOW)
    stats = await store.queue_stats(NOW + 7)
    assert stats == {PLAN: (1, 7.0), DELIVERY: (1, 7.0)}


async def test_delivery_age_counts_from_its_first_attempt_across_retry_rounds(store: Store) -> None:
    await store.ingest([alert()], "", 0, NOW)
    (job,) = await store.claim("w", 10, 30, NOW + 2)
    # a failed round: the delivery waits for its next round, 60 s later, and is not due meanwhile
    assert await store.reschedule(job.id, "w", due_at=NOW + 62, now=NOW + 2, attempted=True, result="503")
    assert await store.queue_stats(NOW + 30) == {PLAN: (0, 0.0), DELIVERY: (1, 30.0)}
    (job,) = await store.claim("w", 10, 30, NOW + 62)
    assert await store.reschedule(job.id, "w", due_at=NOW + 182, now=NOW + 62, attempted=True, result="503")
    assert await store.queue_stats(NOW + 100) == {PLAN: (0, 0.0), DELIVERY: (1, 100.0)}


async def test_dry_runs_do_not_count_towards_the_circuit_breaker(store: Store) -> None:
    breaker = Gate(0, None, None, breaker_max=2, breaker_window=600, first=True)
    for n in range(3):  # dry runs touch nothing: three of them must not pause automation
        await store.ingest([alert(f"d{n}", plans=[("fix", {})])], "", 0, NOW + n)
        job = await claim_plan(store, NOW + n)
        assert await store.gate(job, "w", breaker, NOW + n, skipped) is None
        assert await store.begin_action(job, "w", 0, "http", True, NOW + n, NOW + 100) is not None
    await store.ingest([alert("real", plans=[("fix", {})])], "", 0, NOW + 10)
    job = await claim_plan(store, NOW + 10)
    assert await store.gate(job, "w", breaker, NOW + 10, skipped) is None
    assert await store.pauses() == {}
    for n in range(2):  # real actions still trip it
        await store.begin_action(job, "w", n, "http", False, NOW + 10, NOW + 100)
    await store.ingest([alert("after", plans=[("fix", {})])], "", 0, NOW + 11)
    tripped = await store.gate(await claim_plan(store, NOW + 11), "w", breaker, NOW + 11, skipped)
    assert tripped is not None
    assert "circuit breaker: 2 actions" in tripped.result


async def test_a_nul_byte_in_an_action_detail_does_not_lose_the_result(store: Store) -> None:
    # PostgreSQL text cannot hold NUL (psycopg DataError): the store drops it instead of failing the write.
    await store.ingest([alert(plans=[("fix", {})])], "", 0, NOW)
    job = await claim_plan(store, NOW)
    action = await store.begin_action(job, "w", 0, "command", False, NOW, NOW + 60)
    assert action is not None
    await store.end_action(action, False, "/bin/tool exit 1: bad\x00byte", NOW + 1)
    (record,) = await store.actions_of(job.id)
    assert record.state == "failed"
    assert record.detail.replace("\x00", "") == "/bin/tool exit 1: badbyte"


async def test_storm_guard_pauses_its_plan_once_and_no_other(store: Store) -> None:
    guard = Gate(0, None, None, breaker_max=100, breaker_window=600, first=True, storm_max=2, storm_window=600)
    guards: list[str | None] = []

    def blocked(reason: str, tripped: str | None) -> Outcome:
        guards.append(tripped)
        return skipped(reason, tripped)

    ended = []
    for n in range(4):
        await store.ingest([alert(f"s{n}", plans=[("fix", {})])], "", 0, NOW + n)
        ended.append(await store.gate(await claim_plan(store, NOW + n), "w", guard, NOW + n, blocked))
    assert ended[:2] == [None, None]
    assert [e.state for e in ended[2:] if e is not None] == ["skipped", "skipped"]
    assert guards == [STORM_GUARD, None]  # the trip, then the pause it left
    assert list(await store.pauses()) == ["fix"]
    await store.ingest([alert("o", plans=[("other", {})])], "", 0, NOW + 5)
    assert await store.gate(await claim_plan(store, NOW + 5), "w", guard, NOW + 5, blocked) is None


async def test_max_concurrent_puts_a_new_run_back_to_wait_until_a_run_ends(store: Store) -> None:
    limit = Gate(0, None, None, breaker_max=100, breaker_window=600, first=True, max_concurrent=2)
    running = []
    for n in range(2):
        await store.ingest([alert(f"c{n}", plans=[("fix", {})])], "", 0, NOW)
        running.append(await claim_plan(store, NOW))
        assert await store.gate(running[-1], "w", limit, NOW, skipped) is None
    await store.ingest([alert("c2", plans=[("fix", {})])], "", 0, NOW + 1)
    ended = await store.gate(await claim_plan(store, NOW + 1), "w", limit, NOW + 1, skipped)
    assert ended is not None
    assert (ended.state, ended.result) == (PENDING, "waiting: 2 runs of this plan are in progress (max_concurrent)")

    async def waiting() -> Job:
        (view,) = [v for v in await store.incidents() if v.incident.fingerprint == "c2"]
        (job,) = [j for j in view.jobs if j.kind == PLAN]
        return job

    job = await waiting()
    assert (job.state, job.run_started_at, job.due_at) == (PENDING, None, NOW + 6)  # released, asks again in 5 s
    assert await store.finish(running[0], "w", NOW + 2, lambda status: Outcome("recovered", "ok")) is not None
    assert (await waiting()).due_at == NOW + 2  # a place freed up: it asks at once


async def test_send_slots_space_a_destination_and_hold_each_jobs_slot(store: Store) -> None:
    key = "slack-webhook:abc"
    assert await store.take_slot(1, "w", key, 1.0, NOW) is None  # free: send now
    assert await store.take_slot(2, "w", key, 1.0, NOW) == NOW + 1  # held for job 2
    assert await store.take_slot(3, "w", key, 1.0, NOW + 0.2) == NOW + 2
    assert await store.take_slot(4, "w", "slack-webhook:other", 1.0, NOW) is None  # another destination is free
    assert await store.take_slot(2, "w", key, 1.0, NOW + 0.5) == NOW + 1  # too early: same slot
    assert await store.take_slot(2, "w", key, 1.0, NOW + 1.4) is None  # its slot, claimed late: sends at 1.4
    # job 3's slot (2.0) is less than an interval after that real send: it moves to 2.4
    assert await store.take_slot(3, "w", key, 1.0, NOW + 2.0) == NOW + 2.4
    assert await store.take_slot(3, "w", key, 1.0, NOW + 2.4) is None
    await store.push_slot(key, NOW + 30)  # 429 Retry-After: 30
    assert await store.take_slot(5, "w", key, 1.0, NOW + 3) == NOW + 30


async def test_an_urgent_delivery_takes_the_next_slot_ahead_of_held_ones(store: Store) -> None:
    key = "slack-channel:C1"
    assert await store.take_slot(1, "w", key, 1.0, NOW) is None
    assert [await store.take_slot(n, "w", key, 1.0, NOW) for n in (2, 3, 4)] == [NOW + 1, NOW + 2, NOW + 3]
    assert await store.take_slot(10, "w", key, 1.0, NOW + 0.1, urgent=True) == NOW + 1  # the next slot
    assert await store.take_slot(11, "w", key, 1.0, NOW + 0.2, urgent=True) == NOW + 2  # urgent ones keep their order
    # the held ones moved back behind both, in their order, and come back early only to learn their new slot
    assert [await store.take_slot(n, "w", key, 1.0, NOW + 0.3) for n in (2, 3, 4)] == [NOW + 3, NOW + 4, NOW + 5]
    assert await store.take_slot(5, "w", key, 1.0, NOW + 0.4) == NOW + 6


async def test_due_work_is_claimed_most_urgent_first(store: Store) -> None:
    def with_severity(fp: str, severity: str) -> RoutedAlert:
        routed = alert(fp)
        labels = {**routed.alert.labels, "severity": severity, "note": 'x"severity":"critical"'}
        return dataclasses.replace(routed, alert=dataclasses.replace(routed.alert, labels=labels))

    await store.ingest([with_severity("i", "info"), with_severity("w", "warning"), alert("n")], "", 0, NOW)
    await store.ingest([with_severity("c", "critical")], "", 0, NOW + 1)  # later, yet first
    claimed = [(await store.claim("w", 1, 30, NOW + 2))[0].incident.fingerprint for _ in range(4)]
    assert claimed[:2] == ["c", "w"]
    assert sorted(claimed[2:]) == ["i", "n"]  # neither critical nor warning: by due time


async def test_resolved_replaces_a_firing_message_still_waiting_and_frees_its_slot(store: Store) -> None:
    key = "slack-webhook:abc"
    await store.ingest([alert("a"), alert("b")], "", 0, NOW)
    first, second = await store.claim("w", 10, 30, NOW)
    assert await store.take_slot(first.id, "w", key, 1.0, NOW) is None  # sending
    assert await store.take_slot(second.id, "w", key, 1.0, NOW) == NOW + 1  # waits for its slot, released
    await store.ingest([alert("b", status="resolved")], "", 0, NOW + 0.5)
    (view,) = [v for v in await store.incidents() if v.incident.fingerprint == "b"]
    assert sorted((j.notify_kind, j.state) for j in view.jobs) == [("firing", REPLACED), ("resolved", PENDING)]
    (resolved,) = [j for j in await store.claim("w", 10, 30, NOW + 0.6) if j.incident.fingerprint == "b"]
    assert await store.take_slot(resolved.id, "w", key, 1.0, NOW + 0.6) == NOW + 1  # the freed slot, not NOW + 2


async def test_a_closed_store_answers_unavailable_every_time(store: Store) -> None:
    assert await store.ingest([alert("kept")], "", 0, NOW) == 1
    await store.close()
    for _ in range(2):  # the second call must not wait for an operation the first left behind
        with pytest.raises(StoreUnavailable):
            await store.ingest([alert("late")], "", 0, NOW)
        with pytest.raises(StoreUnavailable):
            await store.ping()
