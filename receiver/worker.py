"""Background workers: claim due jobs from the store, keep their leases alive, run plan steps and deliveries.

A delivery to a rate-limited destination (Slack) first takes a send slot shared through the store; when
its slot is later it is released until then, so pacing never holds a worker or delays other work.

A delivery of a group (alerts of one Alertmanager group for one notifier) takes the whole group and sends
as many of its alerts as one message holds; the rest is released as the group's next message.

Nothing here runs inside an HTTP request. Each claimed job is leased to this process (``owner``); a
heartbeat renews the lease while the step runs, so only a dead process's work is taken over, by any
replica, once its lease expires. A delivery makes one attempt per claim; a transient failure releases it
with a later due time (durable retry: the first ``delivery_attempts`` retries after short waits), so a
failing notifier never holds a worker.

The module is longer than 400 lines because single deliveries, group messages and their edits in place
share one class's lease, retry and metrics handling, and splitting them would split that handling too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from itertools import groupby
from operator import itemgetter

from opsloop.receiver.automation import describe
from opsloop.receiver.config import ReceiverConfig, WorkerConfig
from opsloop.receiver.domain import (
    ANNOUNCED,
    DELIVERY,
    FAILED,
    PENDING,
    PLAN,
    SENT,
    ActionRecord,
    Job,
    Outcome,
    group_class,
)
from opsloop.receiver.metrics import ReceiverMetrics
from opsloop.receiver.notify import edits
from opsloop.receiver.notify.base import HistoryEntry, Notification, Notifier, PermanentError, TransientError
from opsloop.receiver.notify.group import GroupNotification, importance
from opsloop.receiver.recovery import PlanRunner
from opsloop.receiver.retry import backoff_delay
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


def notification_preview(notifier: Notifier, notification: Notification | GroupNotification) -> str:
    """The message as the notifier sends it, cut to a size the timeline can show."""
    try:
        if isinstance(notification, GroupNotification):
            text = notifier.preview_group(notification)
        else:
            text = notifier.preview(notification)
    except Exception as exc:  # a preview must never stop the delivery itself
        text = f"(the message could not be shown: {type(exc).__name__})"
    return text if len(text) <= PREVIEW_LIMIT else text[:PREVIEW_LIMIT] + "\n[cut]"


def _fitted(notifier: Notifier, group: GroupNotification) -> tuple[GroupNotification, str]:
    """The first message of ``group``: as many of its alerts as one message holds (at least one), and its
    preview for the timeline."""
    part = group.but(group.alerts[: max(1, min(notifier.group_fit(group), len(group.alerts)))])
    return part, notification_preview(notifier, part)


def is_urgent(job: Job) -> bool:
    """Urgent work takes the next send slot of its destination: escalations and critical alerts."""
    return job.notify_kind == "escalation" or job.incident.labels.get("severity") == "critical"


def retry_delay(settings: WorkerConfig, attempt: int, retry_after: float | None) -> float:
    """Seconds before the next attempt after failed attempt ``attempt`` (1-based): the first
    ``delivery_attempts - 1`` retries wait at most ``retry_cap``, later ones at most ``redelivery_cap``;
    never less than ``retry_base``."""
    cap = settings.retry_cap if attempt < settings.delivery_attempts else settings.redelivery_cap
    return max(backoff_delay(attempt, settings.retry_base, cap, retry_after), settings.retry_base)


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
                    # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation that
                    # lands as its timeout fires, and the receiver would then never stop.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.settings.poll_interval):
                            await self._wake.wait()
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
        if job.group:
            await self._deliver_group(job, notifier)
            return
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
            pace = notifier.pace
            if await self.store.take_slot(job.id, self.owner, pace.key, pace.interval, time.time(), is_urgent(job)):
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
            # One attempt per claim: a retry is a later claim (and, when paced, a slot of its own).
            await notifier.notify(notification)
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
            await self._end_delivery(job, FAILED, f"gave up after {job.attempts + 1} attempts: {error}")
            return
        delay = retry_delay(self.settings, job.attempts + 1, retry_after)
        await self.store.reschedule(job.id, self.owner, due_at=now + delay, now=now, attempted=True, result=error)
        self.metrics.deliveries.labels(job.target, "retry").inc()
        log.warning("delivery failed, will retry", extra={**fields, "delay_seconds": round(delay, 1), "error": error})

    async def _end_delivery(self, job: Job, state: str, result: str) -> None:
        await self.store.finish(job, self.owner, time.time(), lambda status: Outcome(state, result), attempted=True)
        self.metrics.deliveries.labels(job.target, state).inc()
        if state == FAILED:
            log.error("delivery failed for good", extra={"job": job.id, "notifier": job.target, "error": result})

    # -- groups ---------------------------------------------------------------------------------

    async def _deliver_group(self, job: Job, notifier: Notifier | None) -> None:
        """Send the pending alerts of ``job``'s group, as many as one message holds, as one message."""
        now = time.time()
        members = await self.store.take_group(job, self.owner, now + self.settings.lease, now)
        if members is None:
            return  # another worker sends this group now
        ids = [m.id for m in members]
        if notifier is None:  # the whole group fails at once (and gives its lease back)
            error = f"notifier {job.target} is not configured"
            await self.store.end_group(job, self.owner, ids, FAILED, error, [], now)
            self.metrics.deliveries.labels(job.target, FAILED).inc(len(ids))
            return
        if group_class(job.group) == "resolved" and await self.store.firing_pending(job.target, ids):
            # A firing message about one of these alerts is still to go out: resolved must not overtake it.
            await self.store.release_group(job, self.owner, ids, now + 1.0, now)
            return
        if notifier.pace is not None:
            pace, urgent = notifier.pace, any(map(is_urgent, members))
            if await self.store.group_slot(job, self.owner, ids, pace.key, pace.interval, now, urgent) is not None:
                return  # the group waits in the store for its slot
        if notifier.edits and group_class(job.group) == "resolved":
            members = await self._edit_in_place(job, notifier, members)
            if not members:
                return
        if len(members) == 1 and job.interrupted == 0:
            await self._deliver_alone(job, notifier)
            return
        group, order = await self._group_message(job, members)
        part, preview = await asyncio.to_thread(_fitted, notifier, group)  # see ``_notifications``
        fit = len(part.alerts)
        sent, rest = [m.id for m in order[:fit]], [m.id for m in order[fit:]]
        fields = {"job": job.id, "notifier": job.target, "group": job.group, "alerts": fit, "left": len(rest)}
        title = f"{group.klass} message to {job.target} about {fit} alerts of a group"
        await self.store.record_event(job.incident.id, job.id, "delivery", title, preview, time.time())
        try:
            ref = await notifier.notify_group(part)
        except PermanentError as exc:
            await self.store.end_group(job, self.owner, sent, FAILED, f"permanent error: {exc}", rest, time.time())
            self.metrics.deliveries.labels(job.target, FAILED).inc(fit)
            log.error("group message failed for good", extra={**fields, "error": str(exc)})
            return
        except TransientError as exc:
            await self._retry_group(job, notifier, ids, exc, fields)
            return
        if ref is not None:  # where this message is: later messages thread under the first, edits find it
            await self.store.save_message_ref(f"{job.target}|batch|{job.id}", ref, time.time())
            if group.thread is None:
                await self.store.save_message_ref(self._thread_key(job), ref, time.time())
        result = f"sent in message {job.id} with {fit} alerts of its group"
        # The message took the send slot of ``now``: the group's next message cannot go before the next one.
        ended_at, next_slot = time.time(), None
        if notifier.pace is not None and now + notifier.pace.interval > ended_at:
            next_slot = (now + notifier.pace.interval, notifier.pace.interval)
        await self.store.end_group(job, self.owner, sent, SENT, result, rest, ended_at, ref, next_slot)
        self.metrics.deliveries.labels(job.target, SENT).inc(fit)
        log.info("group message sent", extra=fields)

    async def _deliver_alone(self, job: Job, notifier: Notifier) -> None:
        """A group of one alert is the alert's own message, rendered as ever."""
        (view,) = await self.store.incidents(limit=1, incident_id=job.incident.id)
        notification = build_notification(job, view.actions, describe(self.config, job.incident, view.jobs))
        if job.attempts == 0:  # the message as sent, once: retries send the same
            title = f"{job.notify_kind} message to {job.target}"
            preview = notification_preview(notifier, notification)
            await self.store.record_event(job.incident.id, job.id, "delivery", title, preview, time.time())
        try:
            await notifier.notify(notification)
        except PermanentError as exc:
            await self.store.end_group(job, self.owner, [job.id], FAILED, f"permanent error: {exc}", [], time.time())
            self.metrics.deliveries.labels(job.target, FAILED).inc()
        except TransientError as exc:
            await self._retry_group(job, notifier, [job.id], exc, {"job": job.id, "notifier": job.target})
        else:
            await self.store.end_group(job, self.owner, [job.id], SENT, "sent", [], time.time())
            self.metrics.deliveries.labels(job.target, SENT).inc()

    async def _edit_in_place(self, job: Job, notifier: Notifier, members: list[Job]) -> list[Job]:
        """Resolved alerts change the group messages their firing was in (app mode); returns the members
        whose firing message cannot be edited, which get a message of their own."""
        batches = await self.store.firing_batches(job.target, [m.incident.id for m in members])
        left = [m for m in members if m.incident.id not in batches]
        for batch in sorted(set(batches.values())):
            told = [m for m in members if batches.get(m.incident.id) == batch]
            try:
                shown_in = await self._edit_message(job, notifier, batch, members)
            except PermanentError as exc:
                ids = [m.id for m in told]
                await self.store.record_group(job, self.owner, ids, FAILED, f"permanent error: {exc}", time.time())
                continue
            except TransientError as exc:
                await self._retry_group(job, notifier, [m.id for m in members], exc, {"job": job.id})
                return []
            except edits.MoreReplies:
                return []  # the group waits in the store for the channel's next send slot
            shown_in = shown_in or {}
            left += [m for m in told if m.incident.id not in shown_in]  # not in it: a message of their own
            edited = sorted((shown_in[m.incident.id], m.id) for m in told if m.incident.id in shown_in)
            for (part, ref), ids in groupby(edited, itemgetter(0)):
                done = [i for _, i in ids]
                result = f"updated message {batch} in place" + (f", part {part + 1} in its thread" if part else "")
                await self.store.record_group(job, self.owner, done, SENT, result, time.time(), ref)
                self.metrics.deliveries.labels(job.target, SENT).inc(len(done))
        if job.id not in {m.id for m in left}:  # the job holding the group was edited: give the group back
            await self.store.release_group(job, self.owner, [m.id for m in left], time.time(), time.time())
            return []
        return left

    async def _edit_message(
        self, job: Job, notifier: Notifier, batch: int, members: list[Job]
    ) -> dict[int, tuple[int, str]] | None:
        """Group message ``batch`` edited to show its alerts as they are now (``edits.rewrite``): by incident,
        the part of it and message ``ts`` that show the alert; None when the message cannot be edited. Each
        new reply takes the channel's next send slot: ``edits.MoreReplies`` once the group waits for one."""
        key = f"{job.target}|batch|{batch}"
        ts = await self.store.message_ref(key)
        shown = await self.store.batch_jobs(batch)
        if ts is None or not shown:
            return None
        built = [replace(n, kind="resolved") if n.incident.status == "resolved" else n for n, _ in
                 await self._notifications(shown)]  # fmt: skip
        whole = GroupNotification("firing", built, link=self._link(job), key=job.group, message=batch, thread=ts)
        pace = notifier.pace
        if pace is None:  # no send slots to take: every reply is posted at once
            return await edits.rewrite(self.store, notifier, key, whole, posts=None)
        ids, urgent = [m.id for m in members], any(map(is_urgent, members))
        while True:
            try:
                return await edits.rewrite(self.store, notifier, key, whole)
            except edits.MoreReplies:
                slot = await self.store.group_slot(job, self.owner, ids, pace.key, pace.interval, time.time(), urgent)
                if slot is not None:
                    raise

    async def _notifications(self, members: list[Job]) -> list[tuple[Notification, Job]]:
        """Each member's notification, most important first, with what automation does about its alert.

        Built in a thread, as a group message is fitted and rendered (``_fitted``): for a group of a thousand
        alerts that is tens of milliseconds of CPU, which the event loop would otherwise spend in one piece
        while webhooks wait. In a thread, the interpreter hands the event loop its turn every few
        milliseconds (its switch interval)."""
        runs, actions = await self.store.plan_runs_of(sorted({m.incident.id for m in members}))
        return await asyncio.to_thread(self._built, members, runs, actions)

    def _built(
        self, members: list[Job], runs: list[Job], actions: list[ActionRecord]
    ) -> list[tuple[Notification, Job]]:
        run_incident = {r.id: r.incident.id for r in runs}
        built = [
            (build_notification(
                m, [a for a in actions if run_incident.get(a.job_id) == m.incident.id],
                describe(self.config, m.incident, [r for r in runs if r.incident.id == m.incident.id]),
            ), m)
            for m in members
        ]  # fmt: skip
        return sorted(built, key=lambda pair: importance(pair[0]))

    async def _group_message(self, job: Job, members: list[Job]) -> tuple[GroupNotification, list[Job]]:
        """The group's message about every member, most important first, and the members in that order."""
        built = await self._notifications(members)
        thread = await self.store.message_ref(self._thread_key(job))
        group = GroupNotification(
            group_class(job.group), [n for n, _ in built], link=self._link(job), maybe_repeat=job.interrupted > 0,
            thread=thread, key=job.group, message=job.id,
        )  # fmt: skip
        return group, [m for _, m in built]

    async def _retry_group(
        self, job: Job, notifier: Notifier, ids: list[int], exc: TransientError, fields: dict[str, object]
    ) -> None:
        now = time.time()
        if notifier.pace is not None and exc.retry_after is not None:  # every replica holds back
            await self.store.push_slot(notifier.pace.key, now + exc.retry_after)
        if now - job.created_at > self.settings.give_up_after:
            result = f"gave up after {job.attempts + 1} attempts: {exc}"
            await self.store.end_group(job, self.owner, ids, FAILED, result, [], now)
            self.metrics.deliveries.labels(job.target, FAILED).inc(len(ids))
            return
        delay = retry_delay(self.settings, job.attempts + 1, exc.retry_after)
        await self.store.release_group(job, self.owner, ids, now + delay, now, failed=str(exc))
        self.metrics.deliveries.labels(job.target, "retry").inc(len(ids))
        log.warning("group message failed, will retry", extra={**fields, "delay_seconds": round(delay, 1)})

    @staticmethod
    def _thread_key(job: Job) -> str:
        """The group's first message, whatever its class: later messages of the group thread under it."""
        return f"{job.target}|group|{job.group.split('|', 2)[-1]}"

    def _link(self, job: Job) -> str:
        """Where every alert of the group is listed: the console's incidents, else Alertmanager's alerts."""
        console = self.config.console.external_url
        if console:
            return f"{console}/ui/incidents?status=firing"
        external = job.incident.external_url.rstrip("/")
        return f"{external}/#/alerts" if external.startswith(("http://", "https://")) else ""
