"""Routing decisions per alert: first match wins, continue, plans take alerts only with valid labels."""

from __future__ import annotations

from opsloop.receiver.config import ReceiverConfig
from opsloop.receiver.routing import decide

ACTION = {"type": "redis_set", "redis": "redis://127.0.0.1:1/0", "key": "k:{name}", "value": "1", "ttl": 60}
CONFIG = ReceiverConfig.model_validate({
    "auth": {"bearer_token": "t"},
    "notifiers": {"slack": [{"name": n, "webhook_url": f"http://127.0.0.1:9/{n}"} for n in ("a", "b", "c")]},
    "routes": [
        {"match": {"severity": "critical"}, "notify": ["slack/a"], "continue": True},
        {"match": {"team": "ui"}, "notify": ["slack/b", "slack/a"]},
        {"match": {}, "notify": ["slack/c"]},
    ],
    "recovery": [{"name": "p", "match": {"alertname": "DLQ"}, "labels": {"dlq": "^dlq:(?P<name>[a-z]{1,8})$"},
                  "actions": [ACTION]}],
})  # fmt: skip


def test_first_match_wins_unless_continue() -> None:
    assert decide(CONFIG, {"severity": "critical", "team": "ui"}).notifiers == ("slack/a", "slack/b")
    assert decide(CONFIG, {"severity": "critical"}).notifiers == ("slack/a", "slack/c")
    assert decide(CONFIG, {"team": "ui"}).notifiers == ("slack/b", "slack/a")
    assert decide(CONFIG, {}).notifiers == ("slack/c",)


def test_plan_values_are_only_validated_labels_and_named_groups() -> None:
    decision = decide(CONFIG, {"alertname": "DLQ", "dlq": "dlq:emails", "other": "$(reboot)"})
    (match,) = decision.plans
    assert match.values == {"dlq": "dlq:emails", "name": "emails"}
    assert decision.note == ""


def test_hostile_or_missing_labels_keep_the_plan_off() -> None:
    for labels in ({"alertname": "DLQ", "dlq": "dlq:$(rm -rf /)"}, {"alertname": "DLQ", "dlq": "dlq:{{ 7*7 }}"}):
        decision = decide(CONFIG, labels)
        assert decision.plans == ()
        assert decision.note == "plan p did not run: label dlq does not match its pattern"
    assert decide(CONFIG, {"alertname": "DLQ"}).note == "plan p did not run: label dlq is missing"
    assert decide(CONFIG, {"alertname": "Other"}).note == ""
