"""The limits a plan attempt is checked against, inside the gating transaction of ``Store.gate``.

Pauses, the circuit breaker, a plan's storm guard, the cooldown and the run caps are read here from the
same tables the workers write, so every replica decides from the same rows (under PostgreSQL's advisory
lock, two replicas cannot both let the last allowed run through). A guard that trips stores its pause,
and its event on the timeline, in the same transaction.
"""

from __future__ import annotations

from opsloop.receiver.domain import (
    CIRCUIT_BREAKER,
    GLOBAL,
    PLAN,
    STORM_GUARD,
    Gate,
    Job,
    breaker_why,
    cap_why,
    cooldown_why,
    paused_why,
    storm_why,
)
from opsloop.receiver.store.driver import Op, Stmt
from opsloop.receiver.store.schema import json_text
from opsloop.receiver.store.steering import event, scope_words


def limits(job: Job, gate: Gate, now: float) -> Op[tuple[str, str | None]]:
    """Why a plan attempt may not go ahead (empty when it may), and the guard that paused automation now."""
    result = yield Stmt("SELECT scope, reason FROM pauses WHERE scope IN (?, ?) ORDER BY scope", (GLOBAL, job.target))
    if result.rows:
        scope, why = result.rows[0]
        return paused_why(why, scope), None
    # Dry runs touch nothing, so they do not count towards the breaker (dry_run is INTEGER 0/1 in both).
    result = yield Stmt(
        "SELECT COUNT(*) FROM actions WHERE started_at > ? AND dry_run = 0", (now - gate.breaker_window,)
    )
    count = result.rows[0][0]
    if count >= gate.breaker_max:
        why = breaker_why(count, gate.breaker_window)
        yield from _pause(GLOBAL, why, now, "circuit breaker")
        return paused_why(why), CIRCUIT_BREAKER
    if not gate.first:
        return "", None
    if gate.storm_max is not None:
        result = yield Stmt(
            "SELECT COUNT(*) FROM jobs WHERE kind = ? AND target = ? AND run_started_at > ?",
            (PLAN, job.target, now - gate.storm_window),
        )
        count = result.rows[0][0]
        if count >= gate.storm_max:
            why = storm_why(count, gate.storm_window)
            yield from _pause(job.target, why, now, "storm guard")
            return paused_why(why, job.target), STORM_GUARD
    if gate.cooldown > 0:
        result = yield Stmt(
            "SELECT MAX(COALESCE(finished_at, ?)) FROM jobs WHERE kind = ? AND target = ? "
            "AND vals = ? AND run_started_at IS NOT NULL AND id <> ?",
            (now, PLAN, job.target, json_text(job.values), job.id),
        )
        last = result.rows[0][0]
        if last is not None and last > now - gate.cooldown:
            return cooldown_why(now - last), None
    for cap, window, unit in ((gate.per_hour, 3600.0, "hour"), (gate.per_day, 86400.0, "day")):
        if cap is None:
            continue
        result = yield Stmt(
            "SELECT COUNT(*) FROM jobs WHERE kind = ? AND target = ? AND run_started_at > ?",
            (PLAN, job.target, now - window),
        )
        if result.rows[0][0] >= cap:
            return cap_why(cap, unit), None
    return "", None


def _pause(scope: str, why: str, now: float, guard: str) -> Op[None]:
    """A guard's pause, on the incident timeline; one set by a person (or an earlier trip) stays as it was."""
    paused = yield Stmt(
        "INSERT INTO pauses (scope, reason, at) VALUES (?, ?, ?) ON CONFLICT (scope) DO NOTHING", (scope, why, now)
    )
    if paused.rowcount > 0:
        yield from event(None, None, "pause", f"paused {scope_words(scope)}", why, guard, now)


def wake_waiting(plan: str, now: float) -> Op[None]:
    """A job of ``plan`` ended: the run that waited longest for a place (max_concurrent) asks again now."""
    yield Stmt(
        "UPDATE jobs SET due_at = ? WHERE id IN (SELECT id FROM jobs WHERE kind = ? AND target = ? "
        "AND state = 'pending' AND run_started_at IS NULL AND lease_owner IS NULL AND due_at > ? "
        "ORDER BY due_at, id LIMIT 1)",
        (now, PLAN, plan, now),
    )
