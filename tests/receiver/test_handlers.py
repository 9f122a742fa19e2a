"""POST /alerts end to end: status codes, persistence before the 200, idempotency, metrics and health."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from opsloop.receiver.domain import SENT
from opsloop.testsupport.servers import PostgresServer, port_open, wait_until
from opsloop.testsupport.sinks import SlackSink, SmtpSink

from tests.receiver.harness import (
    TOKEN,
    Receiver,
    alert,
    email_notifier,
    eventually,
    slack_notifier,
    webhook,
    write_config,
)

SAMPLE = Path(__file__).parent / "data" / "alertmanager-0.25-webhook-firing.json"
Start = Callable[[Path], Awaitable[Receiver]]


@pytest.fixture
async def receiver(tmp_path: Path, receivers: Start, mailbox: SmtpSink) -> Receiver:
    config = write_config(
        tmp_path,
        notifiers={"email": [email_notifier("oncall", mailbox.port)]},
        routes=[{"match": {}, "notify": ["email/oncall"]}],
        limits={"max_body_bytes": 4096},
    )
    return await receivers(config)


async def test_sample_payload_is_accepted_and_mailed_once_despite_duplicates(
    receiver: Receiver, mailbox: SmtpSink
) -> None:
    sample = json.loads(SAMPLE.read_text())
    sample["somethingNew"] = {"from": "a future Alertmanager"}  # unknown fields are ignored
    for _ in range(3):  # Alertmanager retries and HA peers deliver the same alert again
        assert await receiver.post(sample) == (200, {"status": "accepted", "alerts": 1})
    await receiver.settled()
    (message,) = await mailbox.inbox.wait_for_async(1)
    assert "QueueBacklogHigh" in message["Subject"]
    view = (await receiver.incidents())["f1dba52ed7b6a575"]
    assert [(j.notify_kind, j.state) for j in view.jobs] == [("firing", SENT)]
    assert len(mailbox.messages) == 1


@pytest.mark.parametrize(
    ("body", "token", "status", "error"),
    [
        (webhook(alert("a")), None, 401, "unauthorized"),
        (webhook(alert("a")), "wrong", 401, "unauthorized"),
        (b"{not json", TOKEN, 400, "Invalid JSON"),
        ({**webhook(alert("a")), "version": "3"}, TOKEN, 400, "version: expected one of 4, got '3'"),
        (webhook({**alert("a"), "startsAt": "yesterday"}), TOKEN, 400, "alerts[0].startsAt: expected an RFC 3339"),
        (webhook({**alert("a"), "labels": {"x": 1}}), TOKEN, 400, "alerts[0].labels.x: expected a string"),
        (webhook(*[alert(f"fp{i}", summary="x" * 200) for i in range(20)]), TOKEN, 413, "body over 4096 bytes"),
    ],
)
async def test_bad_input_status_codes(
    receiver: Receiver, body: object, token: str | None, status: int, error: str
) -> None:
    code, answer = await receiver.post(body, token=token)
    assert code == status
    assert error in answer["error"]
    assert await receiver.incidents() == {}


async def test_status_codes_are_counted_and_basic_auth_works(tmp_path: Path, receivers: Start) -> None:
    (tmp_path / "pw").write_text("s3cret")
    config = write_config(tmp_path, auth={"basic_auth": {"username": "am", "password_file": str(tmp_path / "pw")}})
    receiver = await receivers(config)
    good = base64.b64encode(b"am:s3cret").decode()
    async with receiver.session.post(
        receiver.url + "/alerts", json=webhook(alert("a")), headers={"Authorization": f"Basic {good}"}
    ) as resp:
        assert resp.status == 200
    assert (await receiver.post(webhook(alert("b"))))[0] == 401  # a bearer token is not basic auth
    async with receiver.session.get(receiver.url + "/metrics") as resp:
        text = await resp.text()
    assert 'opsloop_receiver_webhooks_total{outcome="accepted"} 1.0' in text
    assert 'opsloop_receiver_webhooks_total{outcome="unauthorized"} 1.0' in text
    assert 'opsloop_receiver_alerts_total{status="firing"} 1.0' in text
    assert 'opsloop_receiver_automation_paused{scope="*"} 0.0' in text
    assert "opsloop_receiver_queue_depth" in text


async def test_store_down_answers_503_and_recovers(tmp_path: Path, receivers: Start) -> None:
    with PostgresServer() as postgres:
        receiver = await receivers(write_config(tmp_path, store=postgres.dsn))
        assert (await receiver.post(webhook(alert("before"))))[0] == 200
        postgres.kill()
        await asyncio.to_thread(wait_until, lambda: not port_open(postgres.port), 10, "PostgreSQL to be gone")
        code, answer = await receiver.post(webhook(alert("during")))
        assert (code, answer) == (503, {"error": "store unavailable, retry later"})
        async with receiver.session.get(receiver.url + "/-/ready") as resp:
            assert resp.status == 503
        async with receiver.session.get(receiver.url + "/-/healthy") as resp:
            assert resp.status == 200
        postgres.start()
        assert (await receiver.post(webhook(alert("during"))))[0] == 200  # Alertmanager's retry
        assert sorted(await receiver.incidents()) == ["before", "during"]


async def test_truncated_alerts_and_escaped_receiver_reach_the_notification(
    tmp_path: Path, receivers: Start, slack: SlackSink
) -> None:
    config = write_config(
        tmp_path,
        notifiers={"slack": [slack_notifier("oncall", slack.url())]},
        routes=[{"match": {}, "notify": ["slack/oncall"]}],
    )
    receiver = await receivers(config)
    payload = webhook(alert("t1"), truncated=7, receiver='team "a"/\\u00e9{{ x }}')
    assert (await receiver.post(payload))[0] == 200
    (message,) = await slack.inbox.wait_for_async(1)
    assert "7" in json.dumps(message.payload)
    view = (await receiver.incidents())["t1"]
    assert view.incident.truncated_alerts == 7

    async def sent() -> bool:
        return (await receiver.incidents())["t1"].jobs[0].state == SENT

    await eventually(sent)
