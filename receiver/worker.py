"""Background workers: claim due jobs from the store, keep their leases alive, run plan steps and deliveries.

A delivery to a rate-limited destination (Slack) first takes a send slot shared through the store; when
its slot is later it is released until then, so pacing never holds a worker or delays other work.

Nothing here runs inside an HTTP request. Each claimed job is leased to this process (``owner``); a
heartbeat renews the lease while the step runs, so only a dead process's work is taken over, by any
replica, once its lease expires. A delivery makes a few quick attempts with ``with_backoff``; if they all
fail transiently it is released with a later due time (durable retry) instead of holding a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from opsloop.receiver.automation import describe
from opsloop.receiver.config import ReceiverConfig
from opsloop.receiver.domain import ANNOUNCED, DELIVERY, FAILED, PENDING, PLAN, SENT, ActionRecord, Job, Outcome
from opsloop.receiver.metrics import ReceiverMetrics
from opsloop.receiver.notify.base import HistoryEntry, Notification, Notifier, PermanentError, TransientError
from opsloop.receiver.recovery import PlanRunner
from opsloop.receiver.retry import backoff_delay, with_backoff
from opsloop.receiver.store import Store, StoreUnavailable

log = logging.getLogger(__name__)
PREVIEW_LIMIT = 20_000


def build_notification(job: Job, history: Sequence[ActionRecord], automation: Sequence[str] = ()) -> Notification:
    """The message for a delivery job, from the incident as stored (never from the request)."""
    return Notification(
        kind=job.notify_kind or "firing",
        incident=job.incident,
        history=[
            HistoryEntry(
                at=datetime.fromtimestamp(a.started_at, UTC),
                plan=a.plan,
                stage=a.stage + 1,
                action=a.type,
                ok=a.state == "ok",
                detail=a.detail + (" (dry run)" if a.dry_run else ""),
                unknown=a.state == "interrupted",
            )
            for a in history
        ],
        note=job.note,
        maybe_repeat=job.interrupted > 0,
        automation=tuple(automation),
    )


def notification_preview(notifier: Notifier, notification: Notification) -> str:
    """The message as the notifier sends it, cut to a size the timeline can show."""
    try:
        text = notifier.preview(notification)
    except Exception as exc:  # a preview must never stop the delivery itself
        text = f"(the message could not be shown: {type(exc).__name__})"
    return text if len(text) <= PREVIEW_LIMIT else text[:PREVIEW_LIMIT] + "\n[cut]"


class Worker:
    def __init__(
        self, config: ReceiverConfig, store: Store, notifiers: Mapping[str, Notifier], plans: PlanRunner,
        metrics: ReceiverMetrics, owner: str,
    ) -> None:  # fmt: skip
        self.config = config
        self.settings = config.worker
        self.store = store
        self.notifiers = notifiers
        self.plans = plans
        self.metrics = metrics
        self.owner = owner
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """New work was stored: claim now instead of at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Claim and start due jobs until cancelled; running steps are cancelled with it."""
        try:
            while True:
                free = self.settings.concurrency - len(self._tasks)
                jobs: list[Job] = []
                if free > 0:
                    try:
                        jobs = await self.store.claim(self.owner, free, self.settings.lease, time.time())
                    except StoreUnavailable as exc:
                        log.warning("cannot claim work", extra={"error": str(exc)})
                for job in jobs:
                    task = asyncio.create_task(self._step(job), name=f"job-{job.id}")
                    self._tasks.add(task)
                    task.add_done_callback(self._done)
                if len(jobs) < max(free, 1):
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()  # a slot is free

    async def _step(self, job: Job) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(job))
        try:
            if job.kind == PLAN:
                await self.plans.step(job)
            else:
                await self._deliver(job)
        except StoreUnavailable as exc:  # the lease expires and the job is retried
            log.warning("store unavailable during a step", extra={"job": job.id, "error": str(exc)})
        except Exception:
            log.exception("job step failed", extra={"job": job.id, "kind": job.kind})
        finally:
            heartbeat.cancel()

    async def _heartbeat(self, job: Job) -> None:
        lease = self.settings.lease
        while True:
            await asyncio.sleep(lease / 3)
            try:
                if not await self.store.extend_lease(job.id, self.owner, time.time() + lease):
                    return
            except StoreUnavailable as exc:
                log.warning("cannot renew lease", extra={"job": job.id, "error": str(exc)})

    async def _deliver(self, job: Job) -> None:
        notifier = self.notifiers.get(job.target)
        if notifier is None:
            await self._end_delivery(job, FAILED, f"notifier {job.target} is not configured")
            return
        (view,) = await self.store.incidents(limit=1, incident_id=job.incident.id)
        if job.notify_kind == "resolved" and any(
            j.kind == DELIVERY and j.target == job.target and j.notify_kind in ANNOUNCED
            and j.state == PENDING for j in view.jobs
        ):  # fmt: skip
            # The firing message to this notifier is still being retried: resolved must not overtake it.
            await self.store.reschedule(job.id, self.owner, due_at=time.time() + 1.0, now=time.time())
            return
        if notifier.pace is not None:
            urgent = job.notify_kind == "escalation" or job.incident.labels.get("severity") == "critical"
            pace = notifier.pace
            if await self.store.take_slot(job.id, self.owner, pace.key, pace.interval, time.time(), urgent):
                return  # its slot is later: it waits in the store until then, not in a worker
        notification = build_notification(job, view.actions, describe(self.config, job.incident, view.jobs))
        fields = {"job": job.id, "notifier": job.target, "kind": job.notify_kind, "attempt": job.attempts + 1}
        if job.attempts == 0:  # the message as sent, once: retries send the same and are counted on the job
            title = f"{job.notify_kind} message to {job.target}"
            preview = notification_preview(notifier, notification)
            await self.store.record_event(job.incident.id, job.id, "delivery", title, preview, time.time())
        if job.interrupted:
            log.warning("delivery interrupted earlier, sending again", extra=fields)
        try:
            # A rate-limited destination gets one attempt per slot; its retries take a slot of their own.
            await with_backoff(
                lambda: notifier.notify(notification),
                attempts=1 if notifier.pace is not None else self.settings.delivery_attempts,
                base=self.settings.retry_base, cap=self.settings.retry_cap,
            )  # fmt: skip
        except PermanentError as exc:
            await self._end_delivery(job, FAILED, f"permanent error: {exc}")
        except TransientError as exc:
            if notifier.pace is not None and exc.retry_after is not None:  # every replica holds back
                await self.store.push_slot(notifier.pace.key, time.time() + exc.retry_after)
            await self._retry_later(job, str(exc), exc.retry_after, fields)
        else:
            await self._end_delivery(job, SENT, "sent")
            log.info("notification sent", extra=fields)

    async def _retry_later(self, job: Job, error: str, retry_after: float | None, fields: dict[str, object]) -> None:
        now = time.time()
        if now - job.created_at > self.settings.give_up_after:
            await self._end_delivery(job, FAILED, f"gave up after {job.attempts + 1} rounds: {error}")
            return
        delay = max(
            backoff_delay(job.attempts + 1, self.settings.retry_base, self.settings.redelivery_cap, retry_after),
            self.settings.retry_base,
        )
        await self.store.reschedule(job.id, self.owner, due_at=now + delay, now=now, attempted=True, result=error)
        self.metrics.deliveries.labels(job.target, "retry").inc()
        log.warning("delivery failed, will retry", extra={**fields, "delay_seconds": round(delay, 1), "error": error})

    async def _end_delivery(self, job: Job, state: str, result: str) -> None:
        await self.store.finish(job, self.owner, time.time(), lambda status: Outcome(state, result), attempted=True)
        self.metrics.deliveries.labels(job.target, state).inc()
        if state == FAILED:
            log.error("delivery failed for good", extra={"job": job.id, "notifier": job.target, "error": result})
