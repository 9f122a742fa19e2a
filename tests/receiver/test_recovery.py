"""Recovery plans end to end with real Redis, Prometheus and notification sinks."""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp import web
from opsloop.receiver.domain import ESCALATED, GLOBAL, RECOVERED, SENT, SKIPPED
from opsloop.receiver.recovery import fill_query
from opsloop.testsupport.servers import LOOPBACK, PrometheusServer, RedisServer, free_port
from opsloop.testsupport.sinks import SlackSink, SmtpSink

from tests.receiver.harness import (
    Receiver,
    alert,
    email_notifier,
    eventually,
    slack_notifier,
    webhook,
    write_config,
)

Start = Callable[[Path], Awaitable[Receiver]]
DLQ_ALERT = {"alertname": "DLQEntriesIncreasing", "dlq": "dlq:emails"}
FAILING = {"type": "command", "argv": [sys.executable, "-c", "import sys; sys.exit(3)"], "timeout": "5s"}


def dlq_plan(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "requeue-dlq",
        "match": {"alertname": "DLQEntriesIncreasing"},
        "labels": {"dlq": "^dlq:(?P<name>[a-z0-9_-]{1,64})$"},
        "actions": [FAILING],
        "stages": ["0s", "300ms", "600ms"],
        "notify_firing": False,  # these tests follow what the plan itself tells people
        **overrides,
    }


def notifying(slack: SlackSink, mailbox: SmtpSink) -> dict[str, Any]:
    return {
        "notifiers": {
            "slack": [slack_notifier("oncall", slack.url())],
            "email": [email_notifier("oncall", mailbox.port)],
        },
        "routes": [{"match": {}, "notify": ["email/oncall"]}],
    }


def slack_text(message: Any) -> str:
    return json.dumps(message.payload)


async def plan_job(receiver: Receiver, fingerprint: str, state: str, timeout: float = 20.0) -> Any:
    async def ended() -> bool:
        view = (await receiver.incidents()).get(fingerprint)
        return view is not None and any(j.kind == "plan" and j.state == state for j in view.jobs)

    await eventually(ended, timeout, f"plan of {fingerprint} {state}")
    return (await receiver.incidents())[fingerprint]


async def test_failing_action_walks_every_stage_then_escalates_with_history(
    tmp_path: Path, receivers: Start, slack: SlackSink, mailbox: SmtpSink
) -> None:
    config = write_config(tmp_path, **notifying(slack, mailbox), recovery=[dlq_plan(escalate=["slack/oncall"])])
    receiver = await receivers(config)
    assert (await receiver.post(webhook(alert("d1", **DLQ_ALERT))))[0] == 200
    view = await plan_job(receiver, "d1", ESCALATED)
    assert [(a.stage, a.type, a.state) for a in view.actions] == [(s, "command", "failed") for s in range(3)]
    (message,) = await slack.inbox.wait_for_async(1)
    text = slack_text(message)
    assert "ESCALATION" in text
    assert "requeue-dlq ran all 3 stages" in text
    assert "exit" in text.lower()  # the failed actions' details are in the history
    await receiver.settled()
    assert mailbox.messages == []  # the plan held the route's firing mail; escalation went to Slack only
    # Resolved reaches whoever was told it was firing (here: the escalation's Slack channel).
    await receiver.post(webhook(alert("d1", status="resolved", ends="2030-01-02T04:00:00Z", **DLQ_ALERT)))
    messages = await slack.inbox.wait_for_async(2)
    assert "RESOLVED" in slack_text(messages[1])


async def test_resolved_webhook_counts_as_recovered(
    tmp_path: Path, receivers: Start, slack: SlackSink, mailbox: SmtpSink
) -> None:
    plan = dlq_plan(stages=["0s", "30s"], escalate=["slack/oncall"], notify_recovered=["email/oncall"])
    receiver = await receivers(write_config(tmp_path, **notifying(slack, mailbox), recovery=[plan]))
    await receiver.post(webhook(alert("d2", **DLQ_ALERT)))

    async def attempted() -> bool:
        view = (await receiver.incidents())["d2"]
        return len(view.actions) == 1 and view.jobs[0].phase == "attempt" and view.jobs[0].stage == 1

    await eventually(attempted)
    await receiver.post(webhook(alert("d2", status="resolved", ends="2030-01-02T04:00:00Z", **DLQ_ALERT)))
    view = await plan_job(receiver, "d2", RECOVERED, timeout=5)
    # Stage 1 ran, so the alert resolved after it (not "before the attempt"), and the plan's
    # notify_recovered hears of it as of a recovery its verify saw.
    assert view.jobs[0].result == "plan requeue-dlq recovered at stage 1: the alert resolved after stage 1"
    assert len(view.actions) == 1  # the second stage never ran
    await receiver.settled()
    assert slack.messages == []
    (mail,) = mailbox.messages
    assert "recovered at stage 1: the alert resolved after stage 1" in mail.get_body(("plain",)).get_content()


@pytest.fixture
async def dlq_exporter(redis_server: RedisServer) -> AsyncIterator[int]:
    """A scrape target exposing the DLQ's length the way the opsloop exporter names it."""
    client = redis.Redis.from_url(redis_server.url)

    async def metrics(request: web.Request) -> web.Response:
        length = client.llen("dlq:emails")
        return web.Response(text=f'# TYPE opsloop_dlq_length gauge\nopsloop_dlq_length{{dlq="dlq:emails"}} {length}\n')

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    yield port
    await runner.cleanup()
    client.close()


async def test_issue_example_plan_requeues_and_prometheus_verifies(
    tmp_path: Path, receivers: Start, slack: SlackSink, mailbox: SmtpSink, redis_server: RedisServer,
    dlq_exporter: int,
) -> None:  # fmt: skip
    client = redis.Redis.from_url(redis_server.url)
    client.rpush("dlq:emails", *[f"job{i}" for i in range(40)])
    with PrometheusServer({"dlq": [f"{LOOPBACK}:{dlq_exporter}"]}) as prometheus:
        requeue = {
            "type": "dlq_requeue", "redis": redis_server.url, "from": "{dlq}", "to": "queue:{name}", "max_items": 100,
        }  # fmt: skip
        plan = dlq_plan(
            actions=[requeue], stages=["0s", "1m", "5m"], verify='opsloop_dlq_length{dlq="{dlq}"} < 10',
            verify_after="2500ms", cooldown="5m", max_runs={"per_hour": 3, "per_day": 10},
            escalate=["slack/oncall", "email/oncall"], notify_recovered=["slack/oncall"],
        )  # fmt: skip
        config = write_config(tmp_path, **notifying(slack, mailbox), prometheus_url=prometheus.url, recovery=[plan])
        receiver = await receivers(config)

        async def scraped() -> bool:  # the alert would only fire once Prometheus has seen the backlog
            query = {"query": 'opsloop_dlq_length{dlq="dlq:emails"} >= 10'}
            async with receiver.session.get(f"{prometheus.url}/api/v1/query", params=query) as resp:
                return bool((await resp.json())["data"]["result"])

        await eventually(scraped, 20, "the first scrape")
        await receiver.post(webhook(alert("d3", **DLQ_ALERT)))
        view = await plan_job(receiver, "d3", RECOVERED)
    assert client.llen("dlq:emails") == 0
    assert client.llen("queue:emails") == 40
    assert view.actions[0].detail.startswith("moved 40 items")
    assert view.jobs[0].result.startswith("plan requeue-dlq recovered at stage 1: verify holds")
    (message,) = await slack.inbox.wait_for_async(1)
    assert "RECOVERED" in slack_text(message)
    await receiver.settled()
    assert mailbox.messages == []  # repaired: nobody was paged
    client.close()


def test_verify_query_substitution_escapes_values() -> None:
    query = fill_query('x{dlq="{dlq}", q=~"{name}"} < 10', {"dlq": 'a"} or vector(1) #', "name": "b\\"})
    assert query == 'x{dlq="a\\"} or vector(1) #", q=~"b\\\\"} < 10'


async def test_caps_and_cooldown_hold_across_restart(
    tmp_path: Path, receivers: Start, slack: SlackSink, mailbox: SmtpSink, redis_server: RedisServer
) -> None:
    flag = {"type": "redis_set", "redis": redis_server.url, "key": "paused:{name}", "value": "1", "ttl": "1h"}
    plan = dlq_plan(actions=[flag], stages=["0s"], cooldown="1h", max_runs={"per_hour": 2})
    config = write_config(tmp_path, **notifying(slack, mailbox), recovery=[plan])

    async def fire(fingerprint: str, dlq: str, starts: str) -> None:
        receiver = await receivers(config)
        await receiver.post(webhook(alert(fingerprint, starts=starts, alertname="DLQEntriesIncreasing", dlq=dlq)))
        await receiver.settled()
        await receiver.stop()

    await fire("c1", "dlq:a", "2030-01-01T00:00:00Z")
    await fire("c2", "dlq:a", "2030-01-01T00:01:00Z")  # same DLQ, new alert instance: cooldown
    await fire("c3", "dlq:b", "2030-01-01T00:02:00Z")  # another DLQ runs: second run this hour
    await fire("c4", "dlq:c", "2030-01-01T00:03:00Z")  # third: the hourly cap
    receiver = await receivers(config)
    views = await receiver.incidents()
    states = {fp: (views[fp].jobs[0].state, views[fp].jobs[0].result) for fp in ("c1", "c2", "c3", "c4")}
    assert states["c1"][0] == states["c3"][0] == RECOVERED
    assert states["c2"][0] == SKIPPED
    assert states["c2"][1].startswith("plan requeue-dlq did not run: cooldown: the plan last ran for these labels")
    assert states["c4"] == (SKIPPED, "plan requeue-dlq did not run: max_runs: 2 runs per hour reached")
    subjects = sorted(m["Subject"] for m in mailbox.messages)
    assert len(subjects) == 2  # each skipped alert went to its route, with the reason
    notes = [m.get_body(("plain",)).get_content() for m in mailbox.messages]
    assert any("max_runs: 2 runs per hour reached" in n for n in notes)
    client = redis.Redis.from_url(redis_server.url)
    assert sorted(client.keys("paused:*")) == [b"paused:a", b"paused:b"]
    client.close()


async def test_circuit_breaker_pauses_automation_and_tells_a_human(
    tmp_path: Path, receivers: Start, slack: SlackSink, mailbox: SmtpSink, redis_server: RedisServer
) -> None:
    flag = {"type": "redis_set", "redis": redis_server.url, "key": "flag:{name}", "value": "1", "ttl": "1h"}
    config = write_config(
        tmp_path, **notifying(slack, mailbox), recovery=[dlq_plan(actions=[flag], stages=["0s"])],
        circuit_breaker={"max_actions": 2, "window": "1h", "notify": ["slack/oncall"]},
    )  # fmt: skip
    receiver = await receivers(config)
    for n in range(3):
        await receiver.post(webhook(alert(f"b{n}", alertname="DLQEntriesIncreasing", dlq=f"dlq:q{n}")))
        await receiver.settled()
    views = await receiver.incidents()
    assert [views[f"b{n}"].jobs[0].state for n in range(3)] == [RECOVERED, RECOVERED, SKIPPED]
    (paused,) = await slack.inbox.wait_for_async(1)
    assert "AUTOMATION PAUSED" in slack_text(paused)
    assert "circuit breaker: 2 actions" in slack_text(paused)
    (fallback,) = await mailbox.inbox.wait_for_async(1)
    assert "FIRING" in fallback["Subject"]
    status, body = await receiver.admin("GET", "/api/automation")
    assert status == 200
    assert body["paused"][GLOBAL]["reason"].startswith("circuit breaker: 2 actions within 3600s")
    async with receiver.session.get(receiver.url + "/metrics") as resp:
        metrics = await resp.text()
    assert 'opsloop_receiver_automation_paused{scope="*"} 1.0' in metrics
    assert 'opsloop_receiver_guard_trips_total{guard="circuit_breaker"} 1.0' in metrics  # the trip, once
    assert (await receiver.admin("POST", "/api/automation/resume"))[1] == {"paused": {}}


async def test_one_plans_storm_guard_pauses_only_that_plan_and_tells_once(
    tmp_path: Path, receivers: Start, slack: SlackSink, mailbox: SmtpSink, redis_server: RedisServer
) -> None:
    flag = {"type": "redis_set", "redis": redis_server.url, "key": "flag:{name}", "value": "1", "ttl": "1h"}
    noisy = dlq_plan(actions=[flag], stages=["0s"], storm_guard={"max_runs": 2, "window": "1h"})
    quiet = {**dlq_plan(actions=[flag], stages=["0s"]), "name": "other", "match": {"alertname": "Other"}}
    config = write_config(
        tmp_path, **notifying(slack, mailbox), recovery=[noisy, quiet],
        circuit_breaker={"max_actions": 50, "window": "1h", "notify": ["slack/oncall"]},
    )  # fmt: skip
    receiver = await receivers(config)
    for n in range(4):
        await receiver.post(webhook(alert(f"s{n}", alertname="DLQEntriesIncreasing", dlq=f"dlq:q{n}")))
        await receiver.settled()
    await receiver.post(webhook(alert("o1", alertname="Other", dlq="dlq:other")))
    await receiver.settled()
    views = await receiver.incidents()
    assert [views[f"s{n}"].jobs[0].state for n in range(4)] == [RECOVERED, RECOVERED, SKIPPED, SKIPPED]
    assert views["o1"].jobs[0].state == RECOVERED  # the other plan still runs
    client = redis.Redis.from_url(redis_server.url)
    assert sorted(client.keys("flag:*")) == [b"flag:other", b"flag:q0", b"flag:q1"]
    client.close()
    (paused,) = [m for m in slack.messages if "AUTOMATION PAUSED" in slack_text(m)]  # told once
    assert "storm guard: 2 runs of this plan within 3600s" in slack_text(paused)
    assert list((await receiver.admin("GET", "/api/automation"))[1]["paused"]) == ["requeue-dlq"]
    async with receiver.session.get(receiver.url + "/metrics") as resp:
        metrics = await resp.text()
    assert 'opsloop_receiver_guard_trips_total{guard="storm_guard"} 1.0' in metrics
    assert 'opsloop_receiver_guard_trips_total{guard="circuit_breaker"} 0.0' in metrics


@pytest.mark.slow
async def test_max_concurrent_runs_of_a_plan_wait_their_turn_and_all_run(
    tmp_path: Path, receivers: Start, slack: SlackSink, mailbox: SmtpSink
) -> None:
    pause = {"type": "command", "argv": [sys.executable, "-c", "import time; time.sleep(0.5)"], "timeout": "5s"}
    plan = dlq_plan(actions=[pause], stages=["0s"], max_concurrent=1)
    receiver = await receivers(write_config(tmp_path, **notifying(slack, mailbox), recovery=[plan]))
    await receiver.post(webhook(*(alert(f"m{n}", alertname="DLQEntriesIncreasing", dlq=f"dlq:q{n}") for n in range(3))))
    await receiver.settled(timeout=30)
    views = await receiver.incidents()
    assert [views[f"m{n}"].jobs[0].state for n in range(3)] == [RECOVERED] * 3  # none skipped: they waited
    spans = sorted((a.started_at, a.finished_at) for n in range(3) for a in views[f"m{n}"].actions)
    assert len(spans) == 3
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans))  # one at a time


@pytest.mark.parametrize("value", ["$(rm -rf /)", "{{ 7*7 }}"])
async def test_hostile_label_values_are_rejected_or_inert(
    tmp_path: Path, receivers: Start, slack: SlackSink, mailbox: SmtpSink, value: str
) -> None:
    out = tmp_path / "argv.txt"
    record = {
        "type": "command", "argv": [sys.executable, "-c", "import sys; open(sys.argv[1], 'w').write(sys.argv[2])",
                                    str(out), "{payload}"],
    }  # fmt: skip
    strict = dlq_plan()  # dlq must look like dlq:<name>
    lenient = {
        "name": "record", "match": {"alertname": "Echo"}, "labels": {"payload": "^.{1,64}$"}, "actions": [record],
        "notify_firing": False,
    }  # fmt: skip
    receiver = await receivers(write_config(tmp_path, **notifying(slack, mailbox), recovery=[strict, lenient]))
    await receiver.post(
        webhook(alert("h1", alertname="DLQEntriesIncreasing", dlq=value), alert("h2", alertname="Echo", payload=value))
    )
    await receiver.settled()
    views = await receiver.incidents()
    assert [j.kind for j in views["h1"].jobs] == ["delivery"]  # rejected: the plan never ran
    assert views["h1"].jobs[0].note == "plan requeue-dlq did not run: label dlq does not match its pattern"
    assert views["h2"].jobs[0].state == RECOVERED
    assert out.read_text() == value  # one argv element, untouched: no shell, no template evaluation
    (mail,) = await mailbox.inbox.wait_for_async(1)
    body = mail.get_body(("plain",)).get_content()
    assert value in body
    assert "49" not in body
    assert views["h1"].jobs[0].state == SENT


async def test_blocked_plan_tells_the_routes_why_even_after_the_firing_message(
    tmp_path: Path, receivers: Start, slack: SlackSink, mailbox: SmtpSink, redis_server: RedisServer
) -> None:
    """With notify_firing on (the default), a plan that may not run still sends its reason."""
    flag = {"type": "redis_set", "redis": redis_server.url, "key": "flag:{name}", "value": "1", "ttl": "1h"}
    plan = dlq_plan(actions=[flag], stages=["0s"], notify_firing=True)
    receiver = await receivers(write_config(tmp_path, **notifying(slack, mailbox), recovery=[plan]))
    assert (await receiver.admin("POST", "/api/plans/requeue-dlq/pause", {"reason": "maintenance"}))[0] == 200
    await receiver.post(webhook(alert("b1", **DLQ_ALERT)))
    await receiver.settled()
    # The firing message waits for its group; the plan's reason, known by then, is folded into it instead
    # of a second FIRING message that would read as a duplicate.
    (message,) = await mailbox.inbox.wait_for_async(1)
    body = message.get_body(("plain",)).get_content()
    assert "Automation: plan requeue-dlq did not run: automation paused (this plan): maintenance" in body
    (view,) = (await receiver.incidents()).values()
    assert [j.state for j in view.jobs if j.kind == "plan"] == [SKIPPED]
    assert [(j.notify_kind, j.state) for j in view.jobs if j.kind == "delivery"] == [("firing", SENT)]


async def test_optional_named_group_that_did_not_match_reads_empty(
    tmp_path: Path, receivers: Start, slack: SlackSink, mailbox: SmtpSink
) -> None:
    record = {"type": "command", "argv": [sys.executable, "-c", "import sys; open(sys.argv[1], 'w').write(sys.argv[2])",
                                          str(tmp_path / "shard.txt"), "[{shard}]"]}  # fmt: skip
    plan = dlq_plan(labels={"dlq": "^dlq:(?P<name>[a-z]+)(?::(?P<shard>[0-9]+))?$"}, actions=[record], stages=["0s"])
    receiver = await receivers(write_config(tmp_path, **notifying(slack, mailbox), recovery=[plan]))
    await receiver.post(webhook(alert("o1", **DLQ_ALERT)))
    await receiver.settled()
    assert (tmp_path / "shard.txt").read_text() == "[]"
    (view,) = (await receiver.incidents()).values()
    assert view.jobs[0].state == RECOVERED
