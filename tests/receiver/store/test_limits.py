"""The limits a plan attempt is gated by, on both backends, each at its boundary.

A window counts what started strictly after ``now - window``: a run or action exactly one window old no
longer counts, one a moment younger does. A cap or guard trips when the count reaches it, not one later.
The guards' pauses are read back as rows, beside the store.
"""

from __future__ import annotations

from opsloop.receiver.domain import CIRCUIT_BREAKER, GLOBAL, STORM_GUARD, Gate, Job, Outcome
from opsloop.receiver.store import Store

from tests.receiver.store.test_ops import NOW, OPEN_GATE, alert, claim_plan
from tests.receiver.store.test_ops_rows import rows

_fingerprints = iter(range(1_000_000))


def limit(**kw: object) -> Gate:
    fields: dict[str, object] = {"cooldown": 0, "per_hour": None, "per_day": None, "breaker_max": 100}
    return Gate(**{**fields, "breaker_window": 600, "first": True, **kw})  # type: ignore[arg-type]


def blocked(reason: str, guard: str | None) -> Outcome:
    return Outcome("skipped", f"{reason} | {guard}")


async def attempt(store: Store, at: float, gate: Gate, plan: str = "fix", values: dict[str, str] | None = None) -> Job:
    """A new alert's run of ``plan`` claimed at ``at``, before its gate."""
    await store.ingest([alert(f"fp{next(_fingerprints)}", plans=[(plan, values or {})])], "", 0, at)
    return await claim_plan(store, at)


async def gated(store: Store, at: float, gate: Gate, plan: str = "fix", values: dict[str, str] | None = None) -> str:
    """What the gate says of a new run at ``at``: "" when it may go ahead, else the reason and the guard."""
    job = await attempt(store, at, gate, plan, values)
    outcome = await store.gate(job, "w", gate, at, blocked)
    return "" if outcome is None else outcome.result


async def ran(
    store: Store, at: float, plan: str = "fix", values: dict[str, str] | None = None, until: float | None = None
) -> None:
    """A run of ``plan`` started at ``at`` (it counts towards caps and guards) and finished at ``until``."""
    job = await attempt(store, at, OPEN_GATE, plan, values)
    assert await store.gate(job, "w", OPEN_GATE, at, blocked) is None
    await store.finish(job, "w", at if until is None else until, lambda status: Outcome("recovered", "ok"))


async def test_the_hourly_cap_counts_runs_younger_than_an_hour_and_trips_when_reached(store: Store) -> None:
    await ran(store, NOW)
    await ran(store, NOW + 1)
    assert await gated(store, NOW + 3600, limit(per_hour=2)) == ""  # the run at NOW is an hour old
    assert await gated(store, NOW + 3600.5, limit(per_hour=2)) == "max_runs: 2 runs per hour reached | None"
    assert await gated(store, NOW + 3600.5, limit(per_hour=3)) == ""


async def test_the_daily_cap_applies_without_an_hourly_one(store: Store) -> None:
    await ran(store, NOW)
    await ran(store, NOW + 1)
    assert await gated(store, NOW + 86400, limit(per_day=2)) == ""  # the run at NOW is a day old
    assert await gated(store, NOW + 86400.5, limit(per_day=2)) == "max_runs: 2 runs per day reached | None"
    assert await gated(store, NOW + 86400.5, limit(per_hour=5, per_day=2)) == "max_runs: 2 runs per day reached | None"


async def test_the_cooldown_holds_for_its_length_after_the_last_run_of_the_same_values(store: Store) -> None:
    values = {"queue": "a"}
    await ran(store, NOW, values=values, until=NOW + 10)
    assert await gated(store, NOW + 69, limit(cooldown=60), values=values) == (
        "cooldown: the plan last ran for these labels 59s ago | None"
    )
    assert await gated(store, NOW + 69, limit(cooldown=60), values={"queue": "b"}) == ""
    assert await gated(store, NOW + 70, limit(cooldown=60), values=values) == ""  # NOW + 10 is 60 s ago


async def test_a_cooldown_of_one_second_and_a_run_still_going(store: Store) -> None:
    await ran(store, NOW, until=NOW + 10)
    assert (
        await gated(store, NOW + 10.5, limit(cooldown=1))
        == "cooldown: the plan last ran for these labels 0s ago | None"
    )
    job = await attempt(store, NOW + 20, OPEN_GATE)
    assert await store.gate(job, "w", OPEN_GATE, NOW + 20, blocked) is None  # running, not finished
    assert (
        await gated(store, NOW + 40, limit(cooldown=1)) == "cooldown: the plan last ran for these labels 0s ago | None"
    )


async def test_the_breaker_counts_actions_younger_than_its_window_and_pauses_everything(store: Store) -> None:
    job = await attempt(store, NOW, OPEN_GATE, plan="other")
    assert await store.gate(job, "w", OPEN_GATE, NOW, blocked) is None
    assert await store.begin_action(job, "w", 0, "http", False, NOW, NOW + 60) is not None
    await store.finish(job, "w", NOW, lambda status: Outcome("recovered", "ok"))
    assert await gated(store, NOW + 600, limit(breaker_max=1)) == ""  # the action at NOW is a window old
    assert await store.pauses() == {}
    why = "circuit breaker: 1 actions within 600s"
    assert await gated(store, NOW + 599, limit(breaker_max=1)) == f"automation paused: {why} | {CIRCUIT_BREAKER}"
    assert rows(store, "SELECT scope, reason, at FROM pauses") == [(GLOBAL, why, NOW + 599)]
    assert rows(store, "SELECT incident_id, kind, title, detail, actor, at FROM events WHERE kind = 'pause'") == [
        (None, "pause", "paused all plans", why, "circuit breaker", NOW + 599),
    ]  # fmt: skip


async def test_the_storm_guard_counts_runs_younger_than_its_window_and_pauses_its_plan(store: Store) -> None:
    guard = limit(storm_max=2, storm_window=300)
    await ran(store, NOW)
    await ran(store, NOW + 1)
    await ran(store, NOW + 2, plan="other")
    assert await gated(store, NOW + 300, guard) == ""  # the run at NOW is a window old
    why = "storm guard: 2 runs of this plan within 300s"
    assert await gated(store, NOW + 300.5, guard) == f"automation paused (this plan): {why} | {STORM_GUARD}"
    assert rows(store, "SELECT scope, reason, at FROM pauses") == [("fix", why, NOW + 300.5)]
    assert rows(store, "SELECT incident_id, title, detail, actor FROM events WHERE kind = 'pause'") == [
        (None, "paused plan fix", why, "storm guard"),
    ]  # fmt: skip


async def test_a_stored_pause_names_its_scope_and_all_plans_goes_first(store: Store) -> None:
    await store.pause("fix", "deploying fix", NOW, "ann")
    assert await gated(store, NOW, OPEN_GATE) == "automation paused (this plan): deploying fix | None"
    assert await gated(store, NOW, OPEN_GATE, plan="other") == ""
    await store.pause(GLOBAL, "maintenance", NOW, "bob")
    assert await gated(store, NOW + 1, OPEN_GATE) == "automation paused (all plans): maintenance | None"


async def test_later_stages_skip_the_first_attempts_limits_but_not_the_breaker(store: Store) -> None:
    await ran(store, NOW, until=NOW + 1)
    later = limit(cooldown=600, per_hour=1, per_day=1, storm_max=1, first=False)
    assert await gated(store, NOW + 2, later) == ""
    assert await gated(store, NOW + 3, limit(cooldown=600, first=False, breaker_max=0)) == (
        "automation paused: circuit breaker: 0 actions within 600s | circuit_breaker"
    )


async def test_no_cooldown_holds_nothing_back_even_after_a_run_stamped_by_a_clock_ahead(store: Store) -> None:
    await ran(store, NOW, until=NOW + 10)  # finished by a replica whose clock runs 10 s ahead
    assert await gated(store, NOW + 5, limit(cooldown=0)) == ""
    assert (await gated(store, NOW + 5, limit(cooldown=1))).startswith("cooldown: ")
