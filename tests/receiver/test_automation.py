"""Every message says what automation is doing: each plan run's state, or why no plan runs."""

from __future__ import annotations

import dataclasses

import pytest
from opsloop.receiver.automation import describe
from opsloop.receiver.config import ReceiverConfig
from opsloop.receiver.domain import DELIVERY, ESCALATED, PENDING, PLAN, RECOVERED, SKIPPED, Incident, Job
from opsloop.receiver.notify import Notification
from opsloop.receiver.notify.render import load_template

ACTION = {"type": "redis_set", "redis": "redis://127.0.0.1:1/0", "key": "k:{name}", "value": "1", "ttl": 60}
CONFIG = ReceiverConfig.model_validate({
    "auth": {"bearer_token": "t"},
    "recovery": [{"name": "fix", "match": {"alertname": "DLQ"}, "labels": {"dlq": "^dlq:(?P<name>[a-z]{1,8})$"},
                  "actions": [ACTION], "stages": ["0s", "1m", "5m"]}],
})  # fmt: skip
INCIDENT = Incident(
    id=1, fingerprint="f", starts_at="2030-01-01T00:00:00Z", status="firing",
    labels={"alertname": "DLQ", "dlq": "dlq:a"}, annotations={}, ends_at=None, generator_url="",
)  # fmt: skip
RUN = Job(
    id=1, key="k", kind=PLAN, target="fix", notify_kind=None, note="", values={}, state=PENDING, stage=0,
    phase="attempt", due_at=0.0, run_started_at=None, attempts=0, interrupted=0, manual=False, dry_run=False,
    result="", created_at=0.0, finished_at=None, updated_at=0.0, incident=INCIDENT,
)  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "line"),
    [
        ({}, "plan fix starts"),
        ({"result": "waiting: 4 runs of this plan are in progress (max_concurrent)"},
         "plan fix is waiting: 4 runs of this plan are in progress (max_concurrent)"),
        ({"run_started_at": 1.0, "stage": 1}, "plan fix is at stage 2 of 3"),
        ({"run_started_at": 1.0, "stage": 2, "phase": "verify"}, "plan fix ran stage 3 of 3 and is verifying it"),
        ({"state": RECOVERED, "result": "plan fix recovered at stage 1: ok"}, "plan fix recovered at stage 1: ok"),
        ({"state": RECOVERED, "result": "the alert resolved"}, "plan fix: the alert resolved"),
        ({"state": ESCALATED}, "plan fix ran every stage and escalated: a person is needed"),
        ({"state": SKIPPED, "result": "cooldown: the plan last ran 20s ago"},
         "plan fix was skipped: cooldown: the plan last ran 20s ago"),
        ({"state": SKIPPED, "result": "plan fix did not run: automation paused (this plan): storm guard"},
         "plan fix did not run: automation paused (this plan): storm guard"),
    ],
)  # fmt: skip
def test_each_run_state_in_words(changes: dict[str, object], line: str) -> None:
    delivery = dataclasses.replace(RUN, id=2, kind=DELIVERY, target="slack/x")
    assert describe(CONFIG, INCIDENT, [dataclasses.replace(RUN, **changes), delivery]) == [line]


def test_without_a_run_it_says_why() -> None:
    other = dataclasses.replace(INCIDENT, labels={"alertname": "Other"})
    assert describe(CONFIG, other, []) == ["no plan matches this alert"]
    hostile = dataclasses.replace(INCIDENT, labels={"alertname": "DLQ", "dlq": "dlq:$(x)"})
    assert describe(CONFIG, hostile, []) == ["plan fix did not run: label dlq does not match its pattern"]


def test_every_part_shows_it() -> None:
    n = Notification(kind="firing", incident=INCIDENT, automation=("plan fix is at stage 2 of 3",))
    for flavor, default, expected in (
        ("text", "email.txt.j2", "Automation: plan fix is at stage 2 of 3"),
        ("mrkdwn", "slack.md.j2", "*Automation:* plan fix is at stage 2 of 3"),
        ("html", "email.html.j2", "<p><strong>Automation:</strong> plan fix is at stage 2 of 3</p>"),
    ):
        assert expected in load_template("t", "text", flavor, default=default).render(n).splitlines(), flavor  # type: ignore[arg-type]
