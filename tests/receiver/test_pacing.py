"""Pages never wait: Slack's one-message-a-second is kept in the store, not by workers waiting.

A backlog on one webhook must not delay a page routed elsewhere, and replicas sharing a store must keep
one webhook at one message a second together. The Slack stand-in refuses (429) anything faster.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from opsloop.testsupport.servers import PostgresServer
from opsloop.testsupport.sinks import SlackSink
from opsloop.testsupport.slack_limits import POST_INTERVAL, RATE_TOLERANCE

from tests.receiver.harness import Receiver, alert, eventually, slack_notifier, webhook, write_config
from tests.receiver.store.conftest import fresh_postgres_url

Start = Callable[[Path], Awaitable[Receiver]]
BACKLOG, PAGES = "/services/T/B/backlog", "/services/T/B/pages"


def team_config(directory: Path, slack: SlackSink, **sections: object) -> Path:
    """One receiver whose every alert goes to one Slack webhook."""
    notifiers = {"slack": [slack_notifier("team", slack.url(BACKLOG))]}
    return write_config(directory, notifiers=notifiers, routes=[{"match": {}, "notify": ["slack/team"]}], **sections)


@pytest.mark.parametrize("backlog", [40, pytest.param(2000, marks=pytest.mark.slow)])
async def test_a_backlog_on_one_webhook_never_delays_a_page_to_another(
    tmp_path: Path, receivers: Start, slack: SlackSink, backlog: int
) -> None:
    config = write_config(
        tmp_path,
        notifiers={"slack": [slack_notifier("team", slack.url(BACKLOG)), slack_notifier("pages", slack.url(PAGES))]},
        routes=[
            {"matchers": ['severity="critical"'], "notify": ["slack/pages"]}, {"match": {}, "notify": ["slack/team"]},
        ],
        worker={"concurrency": 2, "poll_interval": "50ms", "lease": "3s", "retry_base": "50ms", "retry_cap": "200ms"},
    )  # fmt: skip
    receiver = await receivers(config)
    alerts = [alert(f"b{n}", severity="warning", queue=f"q{n}") for n in range(backlog)]
    status, _ = await receiver.post(webhook(*alerts, group_key=""))  # one message per alert: a real backlog
    assert status == 200
    await slack.inbox.wait_for_async(2, 30)  # the backlog drains at one a second
    posted = time.monotonic()
    await receiver.post(webhook(alert("page", severity="critical")))

    async def paged() -> bool:
        return any(m.path == PAGES for m in slack.messages)

    while not await paged():
        assert time.monotonic() - posted < 5, "the page waited behind the backlog"
        await asyncio.sleep(0.05)
    sent = [m for m in slack.messages if m.path == BACKLOG]
    assert 2 <= len(sent) < backlog
    assert 429 not in slack.responses  # the backlog itself kept Slack's rate


async def test_a_page_to_a_backlogged_webhook_goes_out_in_the_next_slot(
    tmp_path: Path, receivers: Start, slack: SlackSink
) -> None:
    receiver = await receivers(team_config(tmp_path, slack))
    await receiver.post(webhook(*(alert(f"b{n}", severity="warning", queue=f"q{n}") for n in range(30)), group_key=""))
    await slack.inbox.wait_for_async(2, 10)
    before = len(slack.messages)
    await receiver.post(webhook(alert("page", alertname="Page", severity="critical")))
    messages = await slack.inbox.wait_for_async(before + 2, 10)
    assert any("Page" in str(m.payload) for m in messages[before : before + 2])  # the next slot, or the one in flight
    assert 429 not in slack.responses


@pytest.mark.slow
async def test_replicas_sharing_a_store_keep_one_webhook_at_one_message_a_second(
    tmp_path: Path, receivers: Start, slack: SlackSink, postgres_server: PostgresServer
) -> None:
    store = fresh_postgres_url(postgres_server, "pacing")
    replicas = []
    for n in range(2):
        directory = tmp_path / f"replica{n}"
        directory.mkdir()
        replicas.append(await receivers(team_config(directory, slack, store=store)))
    # Like an Alertmanager HA pair: each webhook reaches both replicas; each replica works on its own.
    for n in range(5):
        await asyncio.gather(*(r.post(webhook(alert(f"r{n}"), group_key=f"{{}}:{{n={n}}}")) for r in replicas))
    messages = await slack.inbox.wait_for_async(5, 20)
    await replicas[0].settled()
    assert len(slack.messages) == 5
    assert 429 not in slack.responses
    gaps = [b.received_at - a.received_at for a, b in itertools.pairwise(messages)]
    assert min(gaps) >= POST_INTERVAL * RATE_TOLERANCE

    def sent() -> float:  # a worker counts a delivery after the store records it done: settled() can come first
        return sum(r.state.metrics.deliveries.labels("slack/team", "sent")._value.get() for r in replicas)

    async def counted() -> bool:
        return sent() >= 5

    await eventually(counted, 10, "both replicas counting their deliveries")
    assert sent() == 5  # each alert once, by whichever replica held its slot


async def test_firing_messages_still_waiting_when_alerts_resolve_are_not_sent_stale(
    tmp_path: Path, receivers: Start, slack: SlackSink
) -> None:
    receiver = await receivers(team_config(tmp_path, slack))
    await receiver.post(webhook(*(alert(f"s{n}", queue=f"q{n}") for n in range(6)), group_key=""))
    await slack.inbox.wait_for_async(1, 10)
    await receiver.post(webhook(*(alert(f"s{n}", status="resolved", queue=f"q{n}") for n in range(6)), group_key=""))
    await receiver.settled(30)
    kinds = [m.payload["blocks"][0]["text"]["text"].split(":")[0] for m in slack.messages]
    assert kinds.count("RESOLVED") == 6  # every alert's resolution is told
    assert kinds.count("FIRING") <= 2  # only what went out (or was going out) before the resolution
    views = await receiver.incidents()
    replaced = [j for v in views.values() for j in v.jobs if j.state == "replaced"]
    assert len(replaced) == 6 - kinds.count("FIRING")
