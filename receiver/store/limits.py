"""The limits a plan attempt is checked against, inside the gating transaction of ``Store.gate``.

Pauses, the circuit breaker, the cooldown and the run caps are read here from the same tables the
workers write, so every replica decides from the same rows.
"""

from __future__ import annotations

from opsloop.receiver.domain import GLOBAL, PLAN, Gate, Job, breaker_why, cap_why, cooldown_why, paused_why
from opsloop.receiver.store.driver import Op, Stmt
from opsloop.receiver.store.schema import json_text
from opsloop.receiver.store.steering import event


def limits(job: Job, gate: Gate, now: float) -> Op[tuple[str, bool]]:
    """Why a plan attempt may not run now (empty when it may), and whether that tripped the breaker.

    In order: a pause of all plans or this plan, the circuit breaker over every recent action (which
    pauses all plans when it trips), then for a run's first attempt the cooldown per label values and
    the hourly and daily caps.
    """
    result = yield Stmt("SELECT scope, reason FROM pauses WHERE scope IN (?, ?) ORDER BY scope", (GLOBAL, job.target))
    if result.rows:
        scope, why = result.rows[0]
        return paused_why(why, scope), False
    # Dry runs touch nothing, so they do not count towards the breaker (dry_run is INTEGER 0/1 in both).
    result = yield Stmt(
        "SELECT COUNT(*) FROM actions WHERE started_at > ? AND dry_run = 0", (now - gate.breaker_window,)
    )
    count = result.rows[0][0]
    if count >= gate.breaker_max:
        why = breaker_why(count, gate.breaker_window)
        paused = yield Stmt(
            "INSERT INTO pauses (scope, reason, at) VALUES (?, ?, ?) ON CONFLICT (scope) DO NOTHING",
            (GLOBAL, why, now),
        )
        if paused.rowcount > 0:
            yield from event(None, None, "pause", "paused all plans", why, "circuit breaker", now)
        return paused_why(why), True
    if not gate.first:
        return "", False
    if gate.cooldown > 0:
        result = yield Stmt(
            "SELECT MAX(COALESCE(finished_at, ?)) FROM jobs WHERE kind = ? AND target = ? "
            "AND vals = ? AND run_started_at IS NOT NULL AND id <> ?",
            (now, PLAN, job.target, json_text(job.values), job.id),
        )
        last = result.rows[0][0]
        if last is not None and last > now - gate.cooldown:
            return cooldown_why(now - last), False
    for cap, window, unit in ((gate.per_hour, 3600.0, "hour"), (gate.per_day, 86400.0, "day")):
        if cap is None:
            continue
        result = yield Stmt(
            "SELECT COUNT(*) FROM jobs WHERE kind = ? AND target = ? AND run_started_at > ?",
            (PLAN, job.target, now - window),
        )
        if result.rows[0][0] >= cap:
            return cap_why(cap, unit), False
    return "", False
