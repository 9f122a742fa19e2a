"""Deliveries: quick retries, durable retries across rounds, Retry-After, permanent failures, ordering."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from opsloop.receiver.domain import FAILED, SENT
from opsloop.testsupport.sinks import SlackSink

from tests.receiver.harness import Receiver, alert, slack_notifier, webhook, write_config

Start = Callable[[Path], Awaitable[Receiver]]


async def slack_receiver(tmp_path: Path, receivers: Start, url: str) -> Receiver:
    config = write_config(
        tmp_path,
        notifiers={"slack": [slack_notifier("oncall", url)]},
        routes=[{"match": {}, "notify": ["slack/oncall"], "group_window": "0s"}],
        worker={"poll_interval": "50ms", "lease": "3s", "retry_base": "50ms", "retry_cap": "100ms",
                "delivery_attempts": 3},
    )  # fmt: skip
    return await receivers(config)


async def test_5xx_is_retried_then_kept_for_a_later_round(tmp_path: Path, receivers: Start, slack: SlackSink) -> None:
    slack.fail_next(5, 500)
    receiver = await slack_receiver(tmp_path, receivers, slack.url())
    await receiver.post(webhook(alert("w1")))
    (message,) = await slack.inbox.wait_for_async(1, 15)
    await receiver.settled()
    (job,) = (await receiver.incidents())["w1"].jobs
    assert slack.responses == [500] * 5 + [200]
    # Slack is paced: one try per send slot, each retry a durable round of its own (no worker waits)
    assert (job.state, job.attempts) == (SENT, 6)
    assert receiver.state.metrics.deliveries.labels("slack/oncall", "retry")._value.get() == 5
    assert "TestAlert" in json.dumps(message.payload)
    assert "*Automation:* no plan matches this alert" in json.dumps(message.payload)  # built from the store


async def test_429_retry_after_is_honoured(tmp_path: Path, receivers: Start, slack: SlackSink) -> None:
    slack.fail_next(1, 429, retry_after=1)
    receiver = await slack_receiver(tmp_path, receivers, slack.url())
    posted = time.monotonic()
    await receiver.post(webhook(alert("w2")))
    (message,) = await slack.inbox.wait_for_async(1, 15)
    assert slack.responses == [429, 200]
    assert message.received_at - posted >= 0.9


async def test_a_permanent_error_is_not_retried(tmp_path: Path, receivers: Start, slack: SlackSink) -> None:
    receiver = await slack_receiver(tmp_path, receivers, slack.url("/not-a-webhook"))
    await receiver.post(webhook(alert("w3")))
    await receiver.settled()
    (job,) = (await receiver.incidents())["w3"].jobs
    assert job.state == FAILED
    assert job.attempts == 1
    assert slack.responses == [404]


async def test_resolved_never_overtakes_a_firing_message_still_retrying(
    tmp_path: Path, receivers: Start, slack: SlackSink
) -> None:
    slack.fail_next(4, 500)
    receiver = await slack_receiver(tmp_path, receivers, slack.url())
    await receiver.post(webhook(alert("w4")))
    await receiver.post(webhook(alert("w4", status="resolved", ends="2030-01-02T05:00:00Z")))
    messages = await slack.inbox.wait_for_async(2, 20)
    first, second = (json.dumps(m.payload) for m in messages)
    assert "FIRING" in first
    assert "RESOLVED" not in first
    assert "RESOLVED" in second
    await receiver.settled()
    assert [j.state for j in (await receiver.incidents())["w4"].jobs] == [SENT, SENT]
