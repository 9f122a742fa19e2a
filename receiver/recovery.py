"""Recovery plans, one step at a time: gate, attempt a stage, verify, then recover, retry or escalate.

A plan job alternates between two phases. ``attempt`` checks the limits atomically in the store
(pauses, cooldown, caps, circuit breaker), then runs the stage's actions in order, recording each one
as started before it runs. ``verify`` (``verify_after`` later) asks Prometheus whether the plan's PromQL
holds; a resolved alert counts as recovered too. Not recovered: the next stage is due at its offset from
the run's first attempt, and after the last stage the plan escalates with its history.

Actions run at most once per stage: a worker that finds actions of its stage already started (the
previous owner died mid-stage) marks them interrupted and goes on to verification instead of repeating
them. Their outcome is unknown, never "failed": the plan verifies after ``verify_after`` (PromQL, or the
alert resolving meanwhile) before it moves on or escalates, and the escalation says what is known.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence

import aiohttp
from opsloop.receiver.actions import Action, ActionResult
from opsloop.receiver.config import Plan, ReceiverConfig
from opsloop.receiver.domain import (
    APPROVED,
    ESCALATED,
    PENDING,
    RECOVERED,
    SKIPPED,
    TIMED_OUT,
    ActionRecord,
    Gate,
    Job,
    NewDelivery,
    Outcome,
    delivery_key,
)
from opsloop.receiver.metrics import ReceiverMetrics
from opsloop.receiver.routing import route_notifiers
from opsloop.receiver.store import Store

log = logging.getLogger(__name__)

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_INTERRUPTIONS = 5
"""A plan step whose lease expired this many times ends the run with an escalation."""


def promql_string(value: str) -> str:
    """Escape a value for a PromQL double-quoted string, so it cannot end the string early."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def fill_query(template: str, values: Mapping[str, str]) -> str:
    """Substitute ``{name}`` in a verify query; PromQL's own braces (``{dlq="x"}``) are left alone."""
    return PLACEHOLDER.sub(lambda m: promql_string(values[m.group(1)]), template)


class Verifier:
    """Evaluates a plan's verify expression through Prometheus' instant query API."""

    def __init__(self, session: aiohttp.ClientSession, url: str, timeout: float) -> None:
        self.session = session
        self.url = url.rstrip("/") + "/api/v1/query"
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def holds(self, query: str) -> tuple[bool, str]:
        """True when the expression returns at least one series (a comparison filters) or a non-zero scalar."""
        try:
            async with self.session.get(self.url, params={"query": query}, timeout=self.timeout) as resp:
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return False, f"prometheus query failed: {type(exc).__name__}: {exc}"
        if not isinstance(body, dict) or body.get("status") != "success":
            return False, f"prometheus query failed: {str(body.get('error') if isinstance(body, dict) else body)[:200]}"
        try:
            data = body["data"]
            scalar = data["resultType"] in ("scalar", "string")
            ok = data["result"][1] not in ("0", "") if scalar else bool(data["result"])
            values = [data["result"][1]] if scalar else [str(s["value"][1]) for s in data["result"][:5]]
        except (KeyError, IndexError, TypeError):
            return False, f"prometheus answered without a usable result: {str(body)[:200]}"
        more = "" if scalar or len(data["result"]) <= 5 else f" (+{len(data['result']) - 5} more)"
        return ok, f"verify {'holds' if ok else 'does not hold yet'}: {query} -> [{', '.join(values)}]{more}"


class PlanRunner:
    """Runs one step of a plan job; built once per app with every plan's actions."""

    def __init__(
        self, config: ReceiverConfig, store: Store, actions: Mapping[str, Sequence[Action]],
        verifier: Verifier | None, metrics: ReceiverMetrics, owner: str, lease: float,
    ) -> None:  # fmt: skip
        self.config = config
        self.store = store
        self.actions = actions
        self.verifier = verifier
        self.metrics = metrics
        self.owner = owner
        self.lease = lease

    async def step(self, job: Job) -> None:
        plan = self.config.plan(job.target)
        if plan is None:
            await self._end(job, plan, lambda status: self._fallback(job, f"plan {job.target} is no longer configured"))
        elif job.interrupted >= MAX_INTERRUPTIONS:
            # The step died this often (a crash, or a bug that keeps raising): stop and tell people.
            why = f"its step was interrupted {job.interrupted} times"
            await self._end(job, plan, lambda status: self._escalation(job, plan, status, why, ()))
        elif job.phase == "attempt":
            await self._attempt_step(job, plan)
        else:
            await self._verify_step(job, plan)

    async def _attempt_step(self, job: Job, plan: Plan) -> None:
        now = time.time()
        unknown = bool(job.interrupted) and bool(await self.store.interrupt_actions(job.id, job.stage, now))
        if unknown:
            log.warning("stage interrupted, not repeating its actions", extra=self._fields(job))
            self.metrics.actions.labels(plan.name, "any", "interrupted").inc()
        else:
            tripped: list[str] = []

            def blocked(why: str, guard: str | None) -> Outcome:
                tripped.extend([guard] if guard else [])
                return self._blocked(job, why, guard)

            ended = await self.store.gate(
                job, self.owner, self._gate(job, plan), now, blocked,
                resolved=lambda why: self._recovered(job, plan, why, stage=job.stage),
            )  # fmt: skip
            for guard in tripped:  # counted once the gate's transaction committed
                self.metrics.guard_trips.labels(guard).inc()
            if ended is not None and ended.state == PENDING:
                log.info("plan run waits for a free place", extra={**self._fields(job), "result": ended.result})
                return
            if ended is not None:
                self._count_end(job, plan, ended)
                return
            if plan.stage(job.stage).needs_approval and not await self._approved(job, plan):
                return
            if not await self._run_actions(job, plan):
                return
        # An outcome unknown is verified after a grace period too: a resolved webhook within it proves it worked.
        due = time.time() + (plan.verify_after if plan.verify or unknown else 0.0)
        await self.store.reschedule(job.id, self.owner, due_at=due, now=time.time(), phase="verify", attempted=True)

    def _gate(self, job: Job, plan: Plan) -> Gate:
        breaker, guard = self.config.circuit_breaker, plan.storm_guard
        return Gate(
            cooldown=plan.cooldown, per_hour=plan.max_runs.per_hour, per_day=plan.max_runs.per_day,
            breaker_max=breaker.max_actions, breaker_window=breaker.window, first=job.run_started_at is None,
            storm_max=guard.max_runs if guard else None, storm_window=guard.window if guard else 0.0,
            max_concurrent=plan.max_concurrent,
        )  # fmt: skip

    async def _approved(self, job: Job, plan: Plan) -> bool:
        """Whether a person approved this stage; otherwise ask for approval, wait, or escalate.

        The decision is the store's (a conditional update), so a person and the timeout, or two
        replicas, cannot both decide.
        """
        now, stage = time.time(), plan.stage(job.stage)
        approval = await self.store.approval(job.id, job.stage)
        if approval is None:
            note = f"plan {plan.name} waits for approval before stage {job.stage + 1}" + self._link(job)
            told = self._deliveries(
                job, plan.escalate or self._routes(job), "approval_needed", note, f"approve:{job.stage}"
            )
            await self.store.request_approval(job, self.owner, now, now + stage.approve_timeout, told)
            log.info("plan waits for approval", extra=self._fields(job))
            return False
        if approval.state == APPROVED:
            return True
        if approval.state == PENDING:
            if now < approval.deadline:
                await self.store.reschedule(job.id, self.owner, due_at=approval.deadline, now=now)
                return False
            why = f"no decision within {stage.approve_timeout:g}s"
            if not await self.store.decide_approval(job.id, job.stage, TIMED_OUT, "", why, now):
                return await self._approved(job, plan)  # a person decided at the same moment: follow them
            approval = await self.store.approval(job.id, job.stage)
            assert approval is not None
        if approval.state == TIMED_OUT:
            why = f"no one approved stage {job.stage + 1}: {approval.reason}"
        else:
            why = f"stage {job.stage + 1} was rejected by {approval.decided_by or 'someone'}" + (
                f": {approval.reason}" if approval.reason else ""
            )
        await self._end(job, plan, lambda status: self._declined(job, plan, status, why))
        return False

    def _link(self, job: Job) -> str:
        base = self.config.console.external_url
        return f": {base}/ui/incidents/{job.incident.id}" if base else f" (incident {job.incident.id})"

    async def _run_actions(self, job: Job, plan: Plan) -> bool:
        """Run the stage's actions in order, stopping at the first failure; False if the lease was lost."""
        dry_run = job.dry_run or plan.dry_run
        for position, (config, action) in enumerate(zip(plan.actions, self.actions[plan.name], strict=True)):
            started = time.time()
            action_id = await self.store.begin_action(
                job, self.owner, position, config.type, dry_run, started, started + config.timeout + self.lease
            )
            if action_id is None:
                log.warning("lease lost before an action", extra=self._fields(job))
                return False
            result = await self._run_one(action, job, dry_run)
            elapsed = time.time() - started
            await self.store.end_action(action_id, result.ok, result.detail, time.time())
            outcome = "dry_run" if result.dry_run and result.ok else ("ok" if result.ok else "failed")
            self.metrics.actions.labels(plan.name, config.type, outcome).inc()
            self.metrics.action_seconds.labels(plan.name, config.type).observe(elapsed)
            if not result.ok:
                break
        return True

    @staticmethod
    async def _run_one(action: Action, job: Job, dry_run: bool) -> ActionResult:
        try:
            return await action.run(job.values, dry_run=dry_run)
        except Exception as exc:  # an action bug must not leave the job stuck; it counts as a failure
            log.exception("action raised", extra={"job": job.id, "action": action.type})
            return ActionResult(False, f"internal error: {type(exc).__name__}", dry_run)

    async def _verify_step(self, job: Job, plan: Plan) -> None:
        history = await self.store.actions_of(job.id)
        recovered, detail = await self._verified(job, plan, history)
        title = f"{plan.name} stage {job.stage + 1} verification: {'recovered' if recovered else 'not yet'}"
        await self.store.record_event(job.incident.id, job.id, "verify", title, detail, time.time())
        if recovered:
            await self._end(job, plan, lambda status: self._recovered(job, plan, detail))
            return
        if job.stage + 1 < len(plan.stages):
            started = job.run_started_at or time.time()
            due = max(time.time(), started + plan.stages[job.stage + 1])
            await self.store.reschedule(
                job.id, self.owner, due_at=due, now=time.time(), stage=job.stage + 1, phase="attempt", result=detail
            )
            return
        await self._end(job, plan, lambda status: self._escalation(job, plan, status, detail, history))

    async def _verified(self, job: Job, plan: Plan, history: Sequence[ActionRecord]) -> tuple[bool, str]:
        if job.incident.status == "resolved":
            return True, "the alert resolved"
        if plan.verify and self.verifier is not None:
            return await self.verifier.holds(fill_query(plan.verify, job.values))
        stage = [a for a in history if a.stage == job.stage]
        unknown = [a.type for a in stage if a.state == "interrupted"]
        if unknown:
            return False, (
                f"outcome unknown: the receiver stopped while {', '.join(unknown)} ran, and the alert still "
                f"fires {plan.verify_after:g}s later"
            )
        ok = bool(stage) and all(a.state == "ok" for a in stage)
        return ok, "every action of the stage succeeded" if ok else "an action of the stage did not succeed"

    async def _end(self, job: Job, plan: Plan | None, outcome: Callable[[str], Outcome]) -> None:
        ended = await self.store.finish(job, self.owner, time.time(), outcome)
        if ended is not None and plan is not None:
            self._count_end(job, plan, ended)

    def _count_end(self, job: Job, plan: Plan, ended: Outcome) -> None:
        self.metrics.plan_runs.labels(plan.name, ended.state).inc()
        log.info("plan run ended", extra={**self._fields(job), "outcome": ended.state, "result": ended.result})

    # -- outcomes (pure: they only decide what the store records and which notifications it queues) --

    def _deliveries(
        self, job: Job, notifiers: Sequence[str], kind: str, note: str, scope: str = ""
    ) -> list[NewDelivery]:
        incident = job.incident
        return [
            NewDelivery(delivery_key(n, incident.fingerprint, incident.starts_at, kind, scope), n, kind, note)
            for n in notifiers
        ]

    def _routes(self, job: Job) -> tuple[str, ...]:
        return () if job.manual else route_notifiers(self.config.routes, job.incident.labels)

    def _fallback(self, job: Job, why: str) -> Outcome:
        """The plan will not act: the people the alert routes to get it, with the reason.

        Scoped to the plan, so it is a message of its own even when the routes already got the alert.
        """
        return Outcome(SKIPPED, why, self._deliveries(job, self._routes(job), "firing", why, f"plan:{job.target}"))

    def _blocked(self, job: Job, why: str, guard: str | None) -> Outcome:
        """The run did not go ahead; a guard that paused automation just now also tells a human, once."""
        note = f"plan {job.target} did not run: {why}" if job.stage == 0 else f"plan {job.target} stopped: {why}"
        outcome = self._fallback(job, note)
        if guard is None:
            return outcome
        told = self.config.circuit_breaker.notify or self._routes(job)
        paused = self._deliveries(job, told, "automation_paused", why, scope=f"{time.time():.0f}")
        return Outcome(outcome.state, outcome.result, [*outcome.deliveries, *paused])

    def _recovered(self, job: Job, plan: Plan, detail: str, stage: int | None = None) -> Outcome:
        """``stage``: the last stage that ran (1-based), when it is not the job's current one."""
        note = f"plan {plan.name} recovered at stage {job.stage + 1 if stage is None else stage}: {detail}"
        return Outcome(RECOVERED, note, self._deliveries(job, plan.notify_recovered, "recovered", note, plan.name))

    def _escalation(self, job: Job, plan: Plan, status: str, detail: str, history: Sequence[ActionRecord]) -> Outcome:
        if status == "resolved":
            return Outcome(RECOVERED, "the alert resolved")
        failed = sum(a.state != "ok" for a in history)
        note = (
            f"plan {plan.name} ran all {len(plan.stages)} stages ({len(history)} actions, {failed} not ok) "
            f"and the problem remains: {detail}"
        )
        return self._escalate(job, plan, note)

    def _declined(self, job: Job, plan: Plan, status: str, why: str) -> Outcome:
        """A stage that needed approval was rejected or not approved in time."""
        if status == "resolved":
            return Outcome(RECOVERED, "the alert resolved")
        return self._escalate(job, plan, f"plan {plan.name} stopped before stage {job.stage + 1}: {why}")

    def _escalate(self, job: Job, plan: Plan, note: str) -> Outcome:
        notifiers = plan.escalate or self._routes(job)
        return Outcome(ESCALATED, note, self._deliveries(job, notifiers, "escalation", note, plan.name))

    @staticmethod
    def _fields(job: Job) -> dict[str, object]:
        return {"job": job.id, "plan": job.target, "stage": job.stage, "fingerprint": job.incident.fingerprint}
