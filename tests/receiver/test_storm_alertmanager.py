"""A storm through a real Alertmanager: 500 alerts of one group reach Slack in a few messages, each alert in
exactly one, and resolving the group updates it (app mode: the same messages edited in place).

Alertmanager runs alone (no cluster) with a short ``group_wait``; alerts are posted to its API in a bounded
loop. The Slack stand-ins judge every message by Slack's documented limits; each alert is counted by a
label value only it carries.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opsloop.testsupport.servers import AlertmanagerServer
from opsloop.testsupport.sinks import SlackSink, SmtpSink
from opsloop.testsupport.slack_api import SlackApiSink

from tests.receiver.harness import TOKEN, Receiver, email_notifier, eventually, slack_notifier, write_config

pytestmark = pytest.mark.slow
Start = Callable[[Path], Awaitable[Receiver]]
COUNT = 500
ALERT = re.compile(r"Q\d{4}Z")
CHANNEL, BOT_TOKEN = "C0STORM001", "xoxb-storm-test"


def am_config(receiver: Receiver) -> dict[str, Any]:
    return {
        "route": {
            "receiver": "opsloop", "group_by": ["alertname"], "group_wait": "1s", "group_interval": "2s",
            "repeat_interval": "1h",
        },
        "receivers": [{
            "name": "opsloop",
            "webhook_configs": [{
                "url": receiver.url + "/alerts", "send_resolved": True, "max_alerts": 0,
                "http_config": {"authorization": {"credentials": TOKEN}},
            }],
        }],
    }  # fmt: skip


def storm(count: int, starts: datetime) -> list[dict[str, Any]]:
    annotations = {"summary": "the queue is not draining", "runbook_url": "https://runbooks.example.com/queue-backlog"}
    labels = {"alertname": "QueueBacklog", "severity": "warning"}
    return [
        {"labels": {**labels, "queue": f"Q{n:04d}Z"}, "annotations": annotations, "startsAt": starts.isoformat()}
        for n in range(count)
    ]


async def post_alerts(http: aiohttp.ClientSession, alertmanager: AlertmanagerServer, alerts: list[Any]) -> None:
    for start in range(0, len(alerts), 100):  # bounded: a fixed number of API calls
        async with http.post(f"{alertmanager.url}/api/v2/alerts", json=alerts[start : start + 100]) as resp:
            assert resp.status == 200, await resp.text()


def resolved(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ended = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    return [{**a, "endsAt": ended} for a in alerts]


def told(payloads: Iterable[object]) -> Counter[str]:
    """How often each alert appears, over the blocks of these messages."""
    found: Counter[str] = Counter()
    for payload in payloads:
        found.update(ALERT.findall(json.dumps(payload["blocks"] if isinstance(payload, dict) else payload)))
    return found


def header(payload: dict[str, Any]) -> str:
    return str(payload["blocks"][0]["text"]["text"])


async def fire(
    http: aiohttp.ClientSession, alertmanager: AlertmanagerServer, alerts: list[Any], sink: SlackSink | SlackApiSink
) -> list[Any]:
    """Post the storm to Alertmanager and wait (a minute at most) until every alert is in a Slack message:
    those messages, three at most, each alert in exactly one."""
    await post_alerts(http, alertmanager, alerts)

    async def all_firing_told() -> bool:
        return len(told(m.payload for m in sink.messages)) == len(alerts)

    await eventually(all_firing_told, 60, "every alert in a Slack message")
    firing = list(sink.messages)
    assert len(firing) <= 3
    assert set(told(m.payload for m in firing).values()) == {1}  # each alert in exactly one message
    return firing


@pytest.fixture
async def api_sink() -> AsyncIterator[SlackApiSink]:
    async with SlackApiSink(token=BOT_TOKEN, channels=(CHANNEL,)) as sink:
        yield sink


async def test_500_alerts_of_one_group_reach_slack_in_three_messages_at_most(
    tmp_path: Path, receivers: Start, slack: SlackSink, http: aiohttp.ClientSession
) -> None:
    config = write_config(
        tmp_path, notifiers={"slack": [slack_notifier("team", slack.url())]},
        routes=[{"match": {}, "notify": ["slack/team"]}],
    )  # fmt: skip
    receiver = await receivers(config)
    alerts = storm(COUNT, datetime.now(UTC))
    with AlertmanagerServer(am_config(receiver)) as alertmanager:
        firing = await fire(http, alertmanager, alerts, slack)
        assert all(header(m.payload).startswith("FIRING") for m in firing)

        await post_alerts(http, alertmanager, resolved(alerts))

        def resolved_messages() -> list[Any]:
            return [m for m in slack.messages[len(firing) :] if header(m.payload).startswith("RESOLVED")]

        async def all_resolved_told() -> bool:
            return len(told(m.payload for m in resolved_messages())) == COUNT

        await eventually(all_resolved_told, 60, "every resolution in a Slack message")
        assert len(resolved_messages()) <= 3
        assert set(told(m.payload for m in resolved_messages()).values()) == {1}
        await receiver.settled(30)
    assert len(slack.messages) == len(firing) + len(resolved_messages())  # nothing stale, nothing twice
    assert 429 not in slack.responses


async def test_resolving_a_group_edits_its_messages_in_place_in_app_mode(
    tmp_path: Path, receivers: Start, api_sink: SlackApiSink, http: aiohttp.ClientSession
) -> None:
    app = {"name": "app", "token": BOT_TOKEN, "channel": CHANNEL, "api_url": api_sink.url}
    config = write_config(
        tmp_path, notifiers={"slack": [app]}, routes=[{"match": {}, "notify": ["slack/app"]}],
    )  # fmt: skip
    receiver = await receivers(config)
    alerts = storm(COUNT, datetime.now(UTC))
    with AlertmanagerServer(am_config(receiver)) as alertmanager:
        posted = await fire(http, alertmanager, alerts, api_sink)

        await post_alerts(http, alertmanager, resolved(alerts))

        async def all_edited() -> bool:
            return all(header(m.payload).startswith("RESOLVED") for m in posted)

        await eventually(all_edited, 60, "every group message edited to resolved")
        await receiver.settled(30)
    assert len(api_sink.messages) == len(posted)  # edits, not new messages
    assert len(api_sink.updates.items) >= len(posted)  # once per message, or again as more alerts resolved
    # Each message still shows exactly the alerts it showed when posted, now resolved.
    for message in posted:
        assert told([message.payload]) == told([message.history[0]])
        assert "✅" in json.dumps(message.payload, ensure_ascii=False)
    assert set(told(m.payload for m in posted).values()) == {1}


async def test_email_gets_one_mail_per_group_and_one_for_its_resolution(
    tmp_path: Path, receivers: Start, mailbox: SmtpSink, http: aiohttp.ClientSession
) -> None:
    config = write_config(
        tmp_path, notifiers={"email": [email_notifier("oncall", mailbox.port)]},
        routes=[{"match": {}, "notify": ["email/oncall"]}],
    )  # fmt: skip
    receiver = await receivers(config)
    alerts = storm(120, datetime.now(UTC))
    with AlertmanagerServer(am_config(receiver)) as alertmanager:
        await post_alerts(http, alertmanager, alerts)
        (first,) = await mailbox.inbox.wait_for_async(1, 60)
        await post_alerts(http, alertmanager, resolved(alerts))
        messages = await mailbox.inbox.wait_for_async(2, 60)
        await receiver.settled(30)
    assert len(mailbox.messages) == 2
    for message in messages:
        text = message.get_body(("plain",)).get_content()
        assert set(Counter(ALERT.findall(text)).values()) == {1}
        assert len(set(ALERT.findall(text))) == 120
    assert messages[0]["Subject"].startswith("[FIRING] 120 alerts")
    assert messages[1]["Subject"].startswith("[RESOLVED] 120 alerts")
    assert messages[1]["In-Reply-To"] == first["Message-ID"]
