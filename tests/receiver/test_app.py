"""The assembled receiver with a real Alertmanager in front, and two replicas sharing one PostgreSQL store."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from opsloop.receiver.domain import RECOVERED, SENT
from opsloop.testsupport.servers import AlertmanagerServer, PostgresServer
from opsloop.testsupport.sinks import SmtpSink

from tests.receiver.harness import TOKEN, Receiver, alert, email_notifier, webhook, write_config
from tests.receiver.store.conftest import fresh_postgres_url

Start = Callable[[Path], Awaitable[Receiver]]


async def test_alertmanager_posts_firing_and_resolved(
    tmp_path: Path, receivers: Start, mailbox: SmtpSink, http: aiohttp.ClientSession
) -> None:
    config = write_config(
        tmp_path,
        notifiers={"email": [email_notifier("oncall", mailbox.port)]},
        routes=[{"match": {"severity": "critical"}, "notify": ["email/oncall"]}],
    )
    receiver = await receivers(config)
    am_config = {
        "route": {
            "receiver": "opsloop", "group_by": ["alertname"], "group_wait": "0s", "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{
            "name": "opsloop",
            "webhook_configs": [{
                "url": receiver.url + "/alerts", "send_resolved": True,
                "http_config": {"authorization": {"credentials": TOKEN}},
            }],
        }],
    }  # fmt: skip
    with AlertmanagerServer(am_config) as alertmanager:
        now = datetime.now(UTC)
        posted = {"labels": {"alertname": "DiskFull", "severity": "critical", "instance": "db1"},
                  "annotations": {"summary": "disk full on db1"}, "startsAt": now.isoformat()}  # fmt: skip
        async with http.post(f"{alertmanager.url}/api/v2/alerts", json=[posted]) as resp:
            assert resp.status == 200
        (firing,) = await mailbox.inbox.wait_for_async(1, 20)
        assert firing["Subject"].startswith("[FIRING]")
        assert "disk full on db1" in firing.get_body(("plain",)).get_content()
        ended = {**posted, "endsAt": (now + timedelta(seconds=1)).isoformat()}
        async with http.post(f"{alertmanager.url}/api/v2/alerts", json=[ended]) as resp:
            assert resp.status == 200
        messages = await mailbox.inbox.wait_for_async(2, 30)
    assert messages[1]["Subject"].startswith("[RESOLVED]")
    # Stateless threading: the resolved message replies to the firing one.
    root = messages[0]["Message-ID"]
    assert root
    assert messages[1]["Message-ID"] != root
    assert (messages[1]["In-Reply-To"], messages[1]["References"]) == (root, root)
    await receiver.settled()
    (view,) = (await receiver.incidents()).values()
    assert view.incident.status == "resolved"
    assert [(j.notify_kind, j.state) for j in view.jobs] == [("firing", SENT), ("resolved", SENT)]


async def test_two_replicas_on_one_postgres_store_run_each_plan_once(
    tmp_path: Path, receivers: Start, mailbox: SmtpSink, postgres_server: PostgresServer
) -> None:
    marker = tmp_path / "runs.log"
    append = {
        "type": "command",
        "argv": [sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n')",
                 str(marker), "{id}"],
    }  # fmt: skip
    plan = {"name": "once", "match": {"alertname": "Once"}, "labels": {"id": "^[0-9]{1,4}$"}, "actions": [append],
            "notify_firing": False, "storm_guard": None}  # fmt: skip
    store = fresh_postgres_url(postgres_server, "replicas")
    replicas = []
    for n in range(2):
        directory = tmp_path / f"replica{n}"
        directory.mkdir()
        replicas.append(
            await receivers(
                write_config(
                    directory, store=store, recovery=[plan],
                    notifiers={"email": [email_notifier("oncall", mailbox.port)]},
                    routes=[{"match": {}, "notify": ["email/oncall"]}],
                )
            )
        )  # fmt: skip
    alerts = [alert(f"r{i}", alertname="Once", id=str(i)) for i in range(30)] + [
        alert(f"m{i}", alertname="Mail") for i in range(10)
    ]
    # Like an Alertmanager HA pair: every webhook reaches both replicas, concurrently.
    await asyncio.gather(*(r.post(webhook(a, group_key="")) for a in alerts for r in replicas))
    await replicas[0].settled(30)
    views = await replicas[1].incidents()
    assert len(views) == 40
    assert sorted(marker.read_text().split()) == sorted(str(i) for i in range(30))
    assert all(v.jobs[0].state == (RECOVERED if fp.startswith("r") else SENT) for fp, v in views.items())
    await asyncio.to_thread(mailbox.inbox.wait_for, 10, 10)
    # Barrier instead of a pause: a later alert's message, due after every earlier delivery.
    assert (await replicas[0].post(webhook(alert("marker", alertname="Marker"), group_key="")))[0] == 200
    await asyncio.to_thread(mailbox.inbox.wait_for, 11, 10)
    await replicas[0].settled(30)
    assert "Marker" in mailbox.messages[-1]["Subject"]
    assert len(mailbox.messages) == 11

    # Work is shared: both replicas ran some of the actions, and together each exactly once.
    runs = [r.state.metrics.actions.labels("once", "command", "ok")._value.get() for r in replicas]
    assert sum(runs) == 30
    assert min(runs) > 0
