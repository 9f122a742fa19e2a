"""Single deliveries through a real worker, store and Slack stand-in: what each outcome leaves behind.

The worker runs as in the receiver (claiming from a SQLite store, posting to the Slack stand-in); the
oracles are the store's rows read with SQL, the stand-in's record of requests, the registry's samples
and the log records the worker writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from opsloop.receiver.config import ReceiverConfig
from opsloop.receiver.domain import RoutedAlert
from opsloop.receiver.metrics import ReceiverMetrics
from opsloop.receiver.notify import build_notifiers
from opsloop.receiver.recovery import PlanRunner
from opsloop.receiver.store import Store, open_store
from opsloop.receiver.worker import Worker
from opsloop.testsupport.sinks import SlackSink, SmtpSink

from tests.receiver.harness import email_notifier, eventually
from tests.receiver.test_recovery_outcomes import rows
from tests.receiver.test_recovery_steps import ALERT
from tests.receiver.test_recovery_steps import store as store  # the fixture: a fresh SQLite store


def settings(notifiers: Mapping[str, Any] | None = None, **worker: object) -> ReceiverConfig:
    return ReceiverConfig.model_validate({
        "auth": {"bearer_token": "t"}, "notifiers": notifiers or {}, "worker": {"poll_interval": "20ms", **worker},
    })  # fmt: skip


def worker_of(config: ReceiverConfig, store: Store, notifiers: Mapping[str, Any], metrics: ReceiverMetrics,
              owner: str = "w") -> Worker:  # fmt: skip
    """A worker as the receiver builds it (its plan runner has no plans here)."""
    runner = PlanRunner(config, store, {}, None, metrics, owner, config.worker.lease)
    return Worker(config, store, notifiers, runner, metrics, owner)


@contextlib.asynccontextmanager
async def running(*workers: Worker) -> AsyncIterator[None]:
    """The workers' loops run while the block does, and stop with it. A loop runs until it is cancelled:
    one that ends before (returns or raises) fails the block at once, instead of leaving it to time out."""
    body = asyncio.current_task()
    assert body is not None
    ended: list[asyncio.Task[None]] = []

    def stopped(task: asyncio.Task[None]) -> None:
        ended.append(task)
        body.cancel()

    tasks = [asyncio.create_task(w.run()) for w in workers]
    for task in tasks:
        task.add_done_callback(stopped)
    try:
        yield
    except asyncio.CancelledError:
        if not ended:
            raise
        body.uncancel()
        error = None if ended[0].cancelled() else ended[0].exception()
        raise AssertionError(f"a worker's loop ended on its own: {error!r}") from error
    finally:
        for task in tasks:
            task.remove_done_callback(stopped)
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def notifiers_of(config: ReceiverConfig) -> AsyncIterator[dict[str, Any]]:
    notifiers = build_notifiers(config.notifiers)
    try:
        yield notifiers
    finally:
        for notifier in notifiers.values():
            await notifier.close()


async def until_settled(worker: Worker, check: Callable[[], bool], timeout: float, what: str) -> None:
    """Run ``worker`` until ``check()`` holds and no step of it is in flight. A step commits its outcome
    before it counts and logs it: stopping the worker at the commit could cut off what the tests read."""

    async def settled() -> bool:
        return check() and not worker._tasks

    async with running(worker):
        await eventually(settled, timeout, what)


async def deliver(store: Store, slack: SlackSink, tmp_path: Path, metrics: ReceiverMetrics, **worker: object) -> None:
    """Run a worker until no delivery is pending any more."""
    slack_config = {"slack": [{"name": "oncall", "webhook_url": slack.url()}]}
    config = settings(slack_config, **{"lease": "3s", "retry_base": "10ms", "retry_cap": "20ms", **worker})
    pending = "SELECT COUNT(*) FROM jobs WHERE state = 'pending'"
    async with notifiers_of(config) as notifiers:
        delivering = worker_of(config, store, notifiers, metrics)
        await until_settled(delivering, lambda: rows(tmp_path / "r.db", pending) == [(0,)], 20, "every delivery ended")


def logged(caplog: pytest.LogCaptureFixture, message: str, *fields: str) -> list[tuple[Any, ...]]:
    return [tuple(getattr(r, f) for f in fields) for r in caplog.records if r.getMessage() == message]


async def test_a_delivery_to_a_notifier_not_configured_fails_for_good(
    store: Store, slack: SlackSink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "opsloop.receiver.worker")
    metrics = ReceiverMetrics()
    await store.ingest([RoutedAlert(ALERT, notifiers=("slack/gone",))], "", 0, time.time())
    await deliver(store, slack, tmp_path, metrics)
    why = "notifier slack/gone is not configured"
    assert rows(tmp_path / "r.db", "SELECT id, state, result, attempts FROM jobs") == [(1, "failed", why, 1)]
    assert logged(caplog, "delivery failed for good", "job", "notifier", "error") == [(1, "slack/gone", why)]
    assert (
        metrics.registry.get_sample_value(
            "opsloop_receiver_deliveries_total", {"notifier": "slack/gone", "result": "failed"}
        )
        == 1
    )
    assert slack.responses == []


async def test_each_delivery_shows_its_message_once_and_logs_each_attempt(
    store: Store, slack: SlackSink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "opsloop.receiver.worker")
    metrics = ReceiverMetrics()
    slack.fail_next(1, 500)  # the first message fails once, the other goes at its first attempt
    now = time.time()
    for fp in ("fp1", "fp2"):
        await store.ingest([RoutedAlert(replace(ALERT, fingerprint=fp), notifiers=("slack/oncall",))], "", 0, now)
    await deliver(store, slack, tmp_path, metrics)
    assert slack.responses == [500, 200, 200]
    sent = rows(tmp_path / "r.db", "SELECT id, state, result, attempts FROM jobs ORDER BY attempts")
    assert [(state, result, attempts) for _, state, result, attempts in sent] == [
        ("sent", "sent", 1),
        ("sent", "sent", 2),
    ]
    shown = rows(tmp_path / "r.db", "SELECT job_id, title FROM events WHERE kind = 'delivery' ORDER BY job_id")
    assert shown == [(1, "firing message to slack/oncall"), (2, "firing message to slack/oncall")]
    ((error,),) = logged(caplog, "delivery failed, will retry", "error")
    assert "500" in error
    assert sorted(logged(caplog, "notification sent", "job", "notifier", "kind", "attempt")) == sorted(
        (job, "slack/oncall", "firing", attempts) for job, _, _, attempts in sent
    )
    sample = metrics.registry.get_sample_value
    assert sample("opsloop_receiver_deliveries_total", {"notifier": "slack/oncall", "result": "retry"}) == 1
    assert sample("opsloop_receiver_deliveries_total", {"notifier": "slack/oncall", "result": "sent"}) == 2


async def test_retry_after_is_kept_within_the_cap_of_the_attempts_tier(
    store: Store, slack: SlackSink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "opsloop.receiver.worker")
    slack.fail_next(2, 429, retry_after=0.26)
    await store.ingest([RoutedAlert(ALERT, notifiers=("slack/oncall",))], "", 0, time.time())
    # the first retry may wait up to retry_cap (1 s), later ones up to redelivery_cap (70 ms here)
    await deliver(store, slack, tmp_path, ReceiverMetrics(), delivery_attempts=2, retry_cap="1s", redelivery_cap="70ms")
    assert slack.responses == [429, 429, 200]
    assert logged(caplog, "delivery failed, will retry", "attempt", "delay_seconds") == [(1, 0.3), (2, 0.1)]  # to 0.1 s


async def test_a_permanent_error_ends_the_delivery_with_the_error(
    store: Store, slack: SlackSink, tmp_path: Path
) -> None:
    slack.fail_next(1, error="channel_not_found")
    await store.ingest([RoutedAlert(ALERT, notifiers=("slack/oncall",))], "", 0, time.time())
    await deliver(store, slack, tmp_path, ReceiverMetrics(), concurrency=1)  # one job at a time is enough
    ((state, result, attempts),) = rows(tmp_path / "r.db", "SELECT state, result, attempts FROM jobs")
    assert (state, attempts) == ("failed", 1)
    assert result.startswith("permanent error: ")
    assert "channel_not_found" in result


async def test_a_delivery_older_than_give_up_after_fails_at_its_next_error(
    store: Store, slack: SlackSink, tmp_path: Path
) -> None:
    slack.fail_next(1, 500)
    await store.ingest([RoutedAlert(ALERT, notifiers=("slack/oncall",))], "", 0, time.time() - 86_401)
    await deliver(store, slack, tmp_path, ReceiverMetrics())
    ((state, result, attempts),) = rows(tmp_path / "r.db", "SELECT state, result, attempts FROM jobs")
    assert (state, attempts) == ("failed", 1)
    assert result.startswith("gave up after 1 attempts: ")
    assert "500" in result


async def test_a_delivery_whose_earlier_claim_was_cut_off_is_sent_again_and_says_so(
    store: Store, slack: SlackSink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "opsloop.receiver.worker")
    now = time.time()
    await store.ingest([RoutedAlert(ALERT, notifiers=("slack/oncall",))], "", 0, now - 10)
    assert len(await store.claim("dead", 10, 1.0, now - 10)) == 1  # its worker died holding the lease
    await deliver(store, slack, tmp_path, ReceiverMetrics())
    assert rows(tmp_path / "r.db", "SELECT state, interrupted FROM jobs") == [("sent", 1)]
    assert logged(caplog, "delivery interrupted earlier, sending again", "job", "notifier", "attempt") == [
        (1, "slack/oncall", 1)
    ]


class Broken:
    """A notifier with a bug (no pacing, no edits, a fixed preview): sending raises something no notifier
    is meant to raise, which no real notifier can be made to do."""

    pace = None
    edits = False

    def preview(self, notification: object) -> str:
        return "a message"

    async def close(self) -> None:
        return None

    async def notify(self, notification: object) -> None:
        raise LookupError("a bug")


async def test_a_step_that_raises_is_logged_with_its_job_and_the_worker_goes_on(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await store.ingest([RoutedAlert(ALERT, notifiers=("slack/broken",))], "", 0, time.time())

    async def failed() -> bool:
        return any(r.getMessage() == "job step failed" for r in caplog.records)

    async with running(worker_of(settings(), store, {"slack/broken": Broken()}, ReceiverMetrics())):
        await eventually(failed, 10, "the step's failure logged")
    (record,) = [r for r in caplog.records if r.getMessage() == "job step failed"]
    assert (record.name, record.levelno, record.job, record.kind) == (
        "opsloop.receiver.worker", logging.ERROR, 1, "delivery",
    )  # fmt: skip
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], LookupError)
    # the job keeps its lease until it expires, and is then tried again as interrupted
    assert rows(tmp_path / "r.db", "SELECT state, lease_owner FROM jobs") == [("pending", "w")]


async def test_a_worker_that_cannot_claim_says_why_and_keeps_polling(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    closed = open_store(f"sqlite://{tmp_path / 'r.db'}")
    await closed.open()
    await closed.close()

    async def twice() -> bool:
        return len([r for r in caplog.records if r.getMessage() == "cannot claim work"]) >= 2

    async with running(worker_of(settings(), closed, {}, ReceiverMetrics())):
        await eventually(twice, 10, "two failed claims")
    first = next(r for r in caplog.records if r.getMessage() == "cannot claim work")
    assert (first.name, first.levelno) == ("opsloop.receiver.worker", logging.WARNING)
    assert first.error


@contextlib.contextmanager
def slow_mail(seconds: float) -> Iterator[tuple[SmtpSink, dict[str, Any]]]:
    """A real SMTP server that answers each message's 250 ``seconds`` after taking it, and the
    ``notifiers`` config of an email notifier sending to it (as ``email/slow``)."""
    with SmtpSink() as mailbox:
        mailbox.accept_delay = seconds
        yield mailbox, {"email": [email_notifier("slow", mailbox.port)]}


async def test_a_heartbeat_keeps_a_long_step_leased_so_no_other_worker_takes_it(store: Store, tmp_path: Path) -> None:
    await store.ingest([RoutedAlert(ALERT, notifiers=("email/slow",))], "", 0, time.time())

    async def ended() -> bool:
        return rows(tmp_path / "r.db", "SELECT state FROM jobs") == [("sent",)]

    with slow_mail(1.5) as (mailbox, notifiers):  # several times the lease
        config, metrics = settings(notifiers, lease="600ms"), ReceiverMetrics()
        async with notifiers_of(config) as built:
            workers = [worker_of(config, store, built, metrics, owner) for owner in ("first", "second")]
            async with running(*workers):
                await eventually(ended, 10, "the delivery sent")
        assert len(mailbox.messages) == 1
    assert rows(tmp_path / "r.db", "SELECT attempts, interrupted FROM jobs") == [(1, 0)]


async def test_a_worker_runs_no_more_steps_at_once_than_its_concurrency(store: Store, tmp_path: Path) -> None:
    for fp in ("fp1", "fp2"):
        await store.ingest([RoutedAlert(replace(ALERT, fingerprint=fp), notifiers=("email/slow",))], "", 0, time.time())

    async def ended() -> bool:
        return rows(tmp_path / "r.db", "SELECT state FROM jobs") == [("sent",), ("sent",)]

    with slow_mail(0.3) as (mailbox, notifiers):
        config = settings(notifiers, concurrency=1)
        async with notifiers_of(config) as built, running(worker_of(config, store, built, ReceiverMetrics())):
            await eventually(ended, 10, "both deliveries sent")
        assert (len(mailbox.messages), mailbox.most_accepting) == (2, 1)


async def test_a_store_lost_during_a_step_is_logged_by_the_heartbeat_and_the_step(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    await store.ingest([RoutedAlert(ALERT, notifiers=("email/slow",))], "", 0, time.time())
    messages = ("cannot renew lease", "store unavailable during a step")

    async def both_logged() -> bool:
        return {r.getMessage() for r in caplog.records} >= set(messages)

    with slow_mail(0.6) as (mailbox, notifiers):
        config = settings(notifiers, lease="300ms")

        async def sending() -> bool:
            return mailbox.accepting == 1

        async with notifiers_of(config) as built, running(worker_of(config, store, built, ReceiverMetrics())):
            await eventually(sending, 10, "the message being sent")
            await store.close()  # the database goes away mid-step
            await eventually(both_logged, 10, "the lost store logged")
    for message in messages:
        record = next(r for r in caplog.records if r.getMessage() == message)
        assert (record.levelno, record.job) == (logging.WARNING, 1)
        assert record.error
