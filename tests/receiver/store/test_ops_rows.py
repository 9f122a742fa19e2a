"""Store operations on both backends, checked against the rows they leave.

The rows are read with SQL on a connection of the test's own, not through the store: what a default, a
group, a lease expiry or an interrupted stage writes is what the database holds, whatever the store's
own reads make of it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from typing import Any

import psycopg
import pytest
from opsloop.receiver.domain import (
    DELIVERY,
    PENDING,
    PLAN,
    RECOVERED,
    REPLACED,
    SKIPPED,
    NewDelivery,
    Outcome,
    RoutedAlert,
)
from opsloop.receiver.store import Store, open_store
from opsloop.receiver.store.postgres import PostgresStore
from opsloop.receiver.store.reads import IncidentFilter
from opsloop.testsupport.servers import PostgresServer

from tests.receiver.harness import eventually
from tests.receiver.store.conftest import fresh_postgres_url
from tests.receiver.store.test_ops import NOW, OPEN_GATE, alert, claim_plan, skipped

GROUPED = {"group_key": '{}:{alertname="A"}', "group_windows": {"slack/oncall": 30.0}}


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[Store]:
    """A store of its own on that database, for tests that take a second connection beside it."""
    store = open_store(url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def rows(store: Store, sql: str) -> list[tuple[Any, ...]]:
    """The rows of ``sql``, read beside the store (PostgreSQL: a connection of our own; SQLite: the file)."""
    if isinstance(store, PostgresStore):
        with psycopg.connect(store.dsn) as db:
            return [tuple(row) for row in db.execute(sql).fetchall()]
    with closing(sqlite3.connect(store.path)) as db:  # type: ignore[attr-defined]
        return db.execute(sql).fetchall()


def labelled(routed: RoutedAlert, **labels: str) -> RoutedAlert:
    return dataclasses.replace(
        routed, alert=dataclasses.replace(routed.alert, labels={**routed.alert.labels, **labels})
    )


async def test_ingest_takes_alerts_in_one_order_and_writes_work_with_its_defaults(store: Store) -> None:
    await store.ping()
    await store.ingest([alert("fp2", plans=[("fix", {"dlq": "a"})]), alert("fp1")], "", 0, NOW)
    # replicas lock incidents in one order whatever the webhook's: fingerprint, then startsAt
    assert rows(store, "SELECT fingerprint FROM incidents ORDER BY id") == [("fp1",), ("fp2",)]
    await store.ingest([alert("fp1", status="resolved")], "", 0, NOW + 5)
    work = rows(store, """
        SELECT i.fingerprint, j.kind, j.target, j.notify_kind, j.note, j.state, j.result, j.manual, j.dry_run,
               j.due_at, j.attempts
        FROM jobs j JOIN incidents i ON i.id = j.incident_id ORDER BY j.id""")  # fmt: skip
    stale = "the alert resolved before this message went out"
    assert work == [
        ("fp1", DELIVERY, "slack/oncall", "firing", "", REPLACED, stale, 0, 0, NOW, 0),
        ("fp2", PLAN, "fix", None, "", PENDING, "", 0, 0, NOW, 0),
        ("fp2", DELIVERY, "slack/oncall", "firing", "", PENDING, "", 0, 0, NOW, 0),
        ("fp1", DELIVERY, "slack/oncall", "resolved", "", PENDING, "", 0, 0, NOW + 5, 0),
    ]


async def test_a_grouped_delivery_waits_its_window_in_its_group_and_a_page_does_not_wait(store: Store) -> None:
    await store.ingest(
        [
            alert("fp1", **GROUPED),
            alert("fp2", **GROUPED),
            labelled(alert("fp3", **GROUPED), severity="critical"),
            alert("fp4", group_key="g", group_windows={"email/other": 30.0}),  # no window for its notifier
            alert("fp5", group_windows={"slack/oncall": 30.0}),  # no group key
        ],
        "", 0, NOW,
    )  # fmt: skip
    found = rows(store, """
        SELECT i.fingerprint, j.due_at, j.gid FROM jobs j JOIN incidents i ON i.id = j.incident_id
        ORDER BY i.fingerprint""")  # fmt: skip
    assert [(fp, due) for fp, due, _ in found] == [
        ("fp1", NOW + 30), ("fp2", NOW + 30), ("fp3", NOW), ("fp4", NOW), ("fp5", NOW),
    ]  # fmt: skip
    gids = [gid for _, _, gid in found]
    assert gids[0] is not None
    assert gids == [gids[0]] * 3 + [None, None]


async def test_a_plan_outcome_joins_the_alerts_group_and_is_due_with_its_window(store: Store) -> None:
    await store.ingest([alert("fp1", plans=[("fix", {})], notify_firing=False, **GROUPED)], "", 0, NOW)
    job = await claim_plan(store, NOW)
    why = "plan fix did not run: paused"  # the routes were not told yet (notify_firing: false)
    told = (NewDelivery("k1", "slack/oncall", "firing", why), NewDelivery("k2", "email/lead", "firing", why))
    assert await store.finish(job, "w", NOW + 1, lambda status: Outcome(SKIPPED, why, told)) is not None
    found = rows(
        store,
        """
        SELECT j.target, j.due_at, j.gid IS NOT NULL FROM jobs j WHERE j.kind = 'delivery' ORDER BY j.id""",
    )
    # the notifier the alert's group names joins it; the other has no group and goes at once
    assert found == [("slack/oncall", NOW + 31, True), ("email/lead", NOW + 1, False)]


async def test_a_skipped_note_folds_into_the_waiting_firing_message_and_the_next_delivery_still_queues(
    store: Store,
) -> None:
    await store.ingest([alert("fp1", plans=[("fix", {})], **GROUPED)], "", 0, NOW)  # its firing message waits
    job = await claim_plan(store, NOW)
    told = (
        NewDelivery("k1", "slack/oncall", "firing", "plan fix did not run"),
        NewDelivery("k2", "email/lead", "firing", "n"),
    )
    assert await store.finish(job, "w", NOW + 1, lambda status: Outcome(SKIPPED, "x", told)) is not None
    assert rows(store, "SELECT target, notify_kind FROM jobs WHERE kind = 'delivery' ORDER BY id") == [
        ("slack/oncall", "firing"), ("email/lead", "firing"),
    ]  # fmt: skip


async def test_expiring_the_leases_of_dead_owners_makes_their_work_due_and_leaves_the_living(store: Store) -> None:
    await store.ingest([alert("fp1", **GROUPED), alert("fp2")], "", 0, NOW)
    (alive,) = await store.claim("alive", 1, 60, NOW)  # fp2: the grouped one waits its window
    (dead,) = await store.claim("dead", 1, 60, NOW + 30)
    assert await store.take_group(dead, "dead", NOW + 90, NOW + 30) is not None
    assert await store.expire_leases([], NOW + 40) == 0
    assert await store.expire_leases(["dead", "gone"], NOW + 40) == 1
    assert rows(store, "SELECT id, lease_owner, lease_until FROM jobs ORDER BY lease_owner DESC") == [
        (dead.id, "dead", NOW + 39), (alive.id, "alive", NOW + 60),
    ]  # fmt: skip
    assert rows(store, "SELECT owner, until FROM group_leases") == [("dead", NOW + 39)]


async def test_interrupting_a_stage_marks_only_its_started_actions_and_counts_all_of_them(store: Store) -> None:
    await store.ingest([alert(plans=[("fix", {})])], "", 0, NOW)
    job = await claim_plan(store, NOW)
    done = await store.begin_action(job, "w", 0, "command", False, NOW, NOW + 60)
    assert done is not None
    await store.end_action(done, True, "fine", NOW + 1)
    assert await store.begin_action(job, "w", 1, "command", False, NOW + 2, NOW + 60) is not None
    assert await store.begin_action(dataclasses.replace(job, stage=1), "w", 0, "http", False, NOW + 3, NOW + 60)
    assert await store.interrupt_actions(job.id, 0, NOW + 10) == 2
    assert rows(store, "SELECT stage, position, state, detail, finished_at FROM actions ORDER BY id") == [
        (0, 0, "ok", "fine", NOW + 1),
        (0, 1, "interrupted", "the worker stopped while it ran", NOW + 10),
        (1, 0, "started", "", None),
    ]


async def test_releasing_or_ending_a_job_counts_no_attempt_unless_told(store: Store) -> None:
    await store.ingest([alert(plans=[("fix", {})], notify_firing=False)], "", 0, NOW)
    job = await claim_plan(store, NOW)
    assert await store.reschedule(job.id, "w", due_at=NOW + 5, now=NOW)
    assert rows(store, "SELECT attempts, result, lease_owner, due_at FROM jobs") == [(0, "", None, NOW + 5)]
    job = await claim_plan(store, NOW + 5)
    assert await store.finish(job, "w", NOW + 6, lambda status: Outcome(SKIPPED, f"alert {status}")) is not None
    assert rows(store, "SELECT state, result, attempts, finished_at, lease_owner FROM jobs") == [
        (SKIPPED, "alert firing", 0, NOW + 6, None)
    ]


async def test_a_delivery_that_must_wait_for_its_slot_is_released_until_then_without_an_attempt(store: Store) -> None:
    await store.ingest([alert("fp1"), alert("fp2")], "", 0, NOW)
    first, second = await store.claim("w", 10, 30, NOW)
    assert await store.take_slot(first.id, "w", "slack-webhook:abc", 1.0, NOW) is None
    assert await store.take_slot(second.id, "w", "slack-webhook:abc", 1.0, NOW) == NOW + 1
    assert rows(store, "SELECT id, lease_owner, due_at, attempts, result FROM jobs ORDER BY id") == [
        (first.id, "w", NOW, 0, ""), (second.id, None, NOW + 1, 0, ""),
    ]  # fmt: skip


@pytest.mark.parametrize(("stage", "result"), [
    (0, "the alert resolved before the attempt"),
    (1, "the alert resolved after stage 1"),
])  # fmt: skip
async def test_a_gate_that_finds_the_alert_resolved_ends_the_run_recovered(
    store: Store, stage: int, result: str
) -> None:
    await store.ingest([alert(plans=[("fix", {})], notifiers=())], "", 0, NOW)
    job = dataclasses.replace(await claim_plan(store, NOW), stage=stage)
    await store.ingest([alert(status="resolved", plans=[("fix", {})], notifiers=())], "", 0, NOW + 1)
    assert await store.gate(job, "w", OPEN_GATE, NOW + 2, skipped) == Outcome(RECOVERED, result)
    assert rows(store, "SELECT state, result, attempts, finished_at, run_started_at FROM jobs") == [
        (RECOVERED, result, 0, NOW + 2, None)
    ]


async def test_a_blocked_or_waiting_run_counts_no_attempt(store: Store) -> None:
    await store.pause("fix", "maintenance", NOW, "ops")
    await store.ingest([alert(plans=[("fix", {})], notifiers=())], "", 0, NOW)
    ended = await store.gate(await claim_plan(store, NOW), "w", OPEN_GATE, NOW, skipped)
    assert ended is not None
    assert rows(store, "SELECT state, result, attempts FROM jobs WHERE kind = 'plan'") == [(SKIPPED, ended.result, 0)]
    one = dataclasses.replace(OPEN_GATE, max_concurrent=1)
    for fp in ("c1", "c2"):
        await store.ingest([alert(fp, plans=[("other", {})], notifiers=())], "", 0, NOW)
        await store.gate(await claim_plan(store, NOW), "w", one, NOW, skipped)
    assert rows(store, "SELECT state, attempts, due_at, lease_owner FROM jobs WHERE target = 'other' ORDER BY id") == [
        (PENDING, 0, NOW, "w"), (PENDING, 0, NOW + 5, None),
    ]  # fmt: skip


async def test_incidents_lists_the_fifty_newest_by_default_and_filters_by_status(store: Store) -> None:
    await store.ingest([alert(f"fp{n:02}") for n in range(51)], "", 0, NOW)
    await store.ingest([alert("fp00", status="resolved")], "", 0, NOW + 1)
    assert len(await store.incidents()) == 50
    assert rows(store, "SELECT COUNT(*) FROM incidents") == [(51,)]
    resolved = rows(store, "SELECT fingerprint FROM incidents WHERE status = 'resolved'")
    assert [(v.incident.fingerprint,) for v in await store.incidents(status="resolved")] == resolved
    assert [
        (v.incident.fingerprint,) for v in await store.incidents(filter=IncidentFilter(status="resolved"))
    ] == resolved
    assert len(await store.incidents(100, status="firing")) == 50


async def test_a_resolved_alert_goes_to_the_notifiers_that_heard_it_fire_not_to_new_routes(store: Store) -> None:
    await store.ingest([alert("fp1")], "", 0, NOW)  # told slack/oncall
    await store.ingest([alert("fp1", status="resolved", notifiers=("email/new",))], "", 0, NOW + 5)  # routes changed
    assert rows(store, "SELECT target, notify_kind FROM jobs ORDER BY id") == [
        ("slack/oncall", "firing"), ("slack/oncall", "resolved"),
    ]  # fmt: skip


async def test_a_claim_takes_the_most_urgent_work_up_to_its_limit_across_urgencies(store: Store) -> None:
    await store.ingest(
        [labelled(alert("c"), severity="critical")]
        + [labelled(alert(f"w{n}"), severity="warning") for n in range(3)]
        + [alert(f"i{n}") for n in range(2)],
        "", 0, NOW,
    )  # fmt: skip
    claimed = await store.claim("w", 3, 30, NOW)
    leased = rows(store, "SELECT i.fingerprint FROM jobs j JOIN incidents i ON i.id = j.incident_id "
                         "WHERE j.lease_owner = 'w' ORDER BY i.fingerprint")  # fmt: skip
    assert sorted((j.incident.fingerprint,) for j in claimed) == leased
    assert [fp for (fp,) in leased][:1] == ["c"]
    assert len(leased) == 3
    assert all(fp.startswith("w") for (fp,) in leased[1:])


async def test_renewing_a_lease_renews_the_lease_of_the_group_it_holds(store: Store) -> None:
    await store.ingest([alert("fp1", **GROUPED)], "", 0, NOW)
    (job,) = await store.claim("w", 1, 60, NOW + 30)
    assert await store.take_group(job, "w", NOW + 90, NOW + 30) is not None
    assert await store.extend_lease(job.id, "w", NOW + 120)
    assert rows(store, "SELECT lease_owner, lease_until FROM jobs") == [("w", NOW + 120)]
    assert rows(store, "SELECT owner, until FROM group_leases") == [("w", NOW + 120)]
    assert not await store.extend_lease(job.id, "other", NOW + 150)  # not its lease: nothing moves
    assert rows(store, "SELECT until FROM group_leases") == [(NOW + 120,)]


async def test_gating_on_postgresql_waits_while_another_replica_holds_the_gate_lock(
    postgres_server: PostgresServer,
) -> None:
    url = fresh_postgres_url(postgres_server, "gate")
    async with opened(url) as store:
        await store.ingest([alert(plans=[("fix", {})])], "", 0, NOW)
        job = await claim_plan(store, NOW)
        with psycopg.connect(url, autocommit=True) as other:
            # another replica gating now holds the advisory lock every replica of any version takes: "opsl"
            other.execute("SELECT pg_advisory_lock(%s)", (0x6F70736C,))
            gating = asyncio.create_task(store.gate(job, "w", OPEN_GATE, NOW, skipped))

            async def waiting() -> bool:
                found = other.execute("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                return found.fetchone() == (1,)

            await eventually(waiting, 10, "the gate waiting for the lock")
            assert not gating.done()
            other.execute("SELECT pg_advisory_unlock(%s)", (0x6F70736C,))
            assert await gating is None


async def test_a_claim_leases_the_group_of_the_member_it_takes_for_the_lease(store: Store) -> None:
    await store.ingest([alert("fp1", **GROUPED)], "", 0, NOW)
    (job,) = await store.claim("w", 1, 60, NOW + 30)  # due when its 30 s group window ends
    assert rows(store, "SELECT id, lease_owner, lease_until FROM jobs") == [(job.id, "w", NOW + 90)]
    assert rows(store, "SELECT owner, until FROM group_leases") == [("w", NOW + 90)]


async def test_a_claim_on_postgresql_leaves_a_member_whose_group_row_another_replica_holds(
    postgres_server: PostgresServer,
) -> None:
    url = fresh_postgres_url(postgres_server, "grouprow")
    async with opened(url) as store:
        await store.ingest([alert("fp1", **GROUPED)], "", 0, NOW)
        (first,) = await store.claim("a", 1, 30, NOW + 30)  # the job and its group leased until NOW + 60
        with psycopg.connect(url) as other:
            # both leases expired at NOW + 61, but another replica's claim holds the group's lease row
            other.execute("SELECT gid FROM group_leases FOR UPDATE")
            assert await store.claim("b", 1, 30, NOW + 61) == []
            other.rollback()
        (again,) = await store.claim("b", 1, 30, NOW + 61)
        assert again.id == first.id
        assert rows(store, "SELECT owner, until FROM group_leases") == [("b", NOW + 91)]
