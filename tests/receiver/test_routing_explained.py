"""Routing and its explanation, checked field by field against outcomes written out by hand.

The console's "why did this alert go there" page shows ``explain``; a wrong reason there sends an
on-call engineer the wrong way, so every field is pinned, not just whether a route matched.
"""

from __future__ import annotations

from opsloop.receiver.config import ReceiverConfig
from opsloop.receiver.routing import decide, explain, mismatches, plan_values

ACTION = {"type": "redis_set", "redis": "redis://127.0.0.1:1/0", "key": "k", "value": "1", "ttl": 60}
CONFIG = ReceiverConfig.model_validate({
    "auth": {"bearer_token": "t"},
    "notifiers": {"slack": [{"name": n, "webhook_url": f"http://127.0.0.1:9/{n}"} for n in ("a", "b", "c")]},
    "routes": [
        {"match": {"team": "db"}, "matchers": ['severity=~"critical|page"'], "notify": ["slack/a"], "continue": True},
        {"match": {"team": "db"}, "notify": ["slack/a", "slack/b"]},
        {"match": {}, "notify": ["slack/c"]},
    ],
    "recovery": [
        {"name": "dlq", "match": {"alertname": "DLQ"},
         "labels": {"dlq": "dlq:(?P<name>[a-z]+)(?P<shard>-[0-9])?", "env": "prod|stage"}, "actions": [ACTION]},
        {"name": "any", "matchers": ['alertname=~"DLQ|Backlog"'], "labels": {"queue": "[a-z]+"},
         "actions": [ACTION]},
    ],
})  # fmt: skip


def test_equality_mismatches_say_what_was_wanted_and_what_came() -> None:
    (route, *_) = CONFIG.routes
    assert mismatches(route, {"team": "ui", "severity": "page"}) == ["team: wanted 'db', got 'ui'"]
    assert mismatches(route, {"severity": "page"}) == ["team: missing"]
    failed = "severity=~\"critical|page\" failed: severity='info'"
    assert mismatches(route, {"team": "db", "severity": "info"}) == [failed]
    assert mismatches(route, {"team": "db", "severity": "page"}) == []
    assert mismatches(route, {}) == ["team: missing", 'severity=~"critical|page" failed: severity is missing']


def test_plan_values_fully_match_and_keep_named_groups() -> None:
    dlq = CONFIG.recovery[0]
    assert plan_values(dlq, {"dlq": "dlq:mail-3", "env": "prod", "x": "y"}) == (
        {"dlq": "dlq:mail-3", "name": "mail", "shard": "-3", "env": "prod"},
        [],
    )
    # an optional group that did not take part reads "", not None
    assert plan_values(dlq, {"dlq": "dlq:mail", "env": "stage"}) == (
        {"dlq": "dlq:mail", "name": "mail", "shard": "", "env": "stage"},
        [],
    )
    # the whole value must match: a prefix or a suffix that fits is not enough
    assert plan_values(dlq, {"dlq": "dlq:mail;reboot", "env": "production"}) == (
        {},
        ["label dlq does not match its pattern", "label env does not match its pattern"],
    )
    assert plan_values(dlq, {"env": "prod"}) == ({"env": "prod"}, ["label dlq is missing"])


def test_every_matching_plan_takes_the_alert_and_rejections_are_joined() -> None:
    decision = decide(CONFIG, {"alertname": "DLQ", "dlq": "dlq:mail", "env": "prod", "queue": "mail"})
    assert [(m.plan.name, m.values) for m in decision.plans] == [
        ("dlq", {"dlq": "dlq:mail", "name": "mail", "shard": "", "env": "prod"}),
        ("any", {"queue": "mail"}),
    ]
    assert decision.rejected == ()
    decision = decide(CONFIG, {"alertname": "DLQ", "dlq": "x", "queue": "Q1"})
    assert decision.plans == ()
    assert decision.rejected == (
        "plan dlq did not run: label dlq does not match its pattern, label env is missing",
        "plan any did not run: label queue does not match its pattern",
    )
    assert decision.note == (
        "plan dlq did not run: label dlq does not match its pattern, label env is missing; "
        "plan any did not run: label queue does not match its pattern"
    )


def test_a_notifier_named_by_two_matching_routes_is_told_once() -> None:
    assert decide(CONFIG, {"team": "db", "severity": "page"}).notifiers == ("slack/a", "slack/b")
    assert decide(CONFIG, {"team": "db"}).notifiers == ("slack/a", "slack/b")
    assert decide(CONFIG, {"team": "ui", "severity": "page"}).notifiers == ("slack/c",)


def test_explain_gives_every_route_and_plan_with_its_reason() -> None:
    found = explain(CONFIG, {"team": "db", "severity": "page", "alertname": "Backlog", "queue": "Q"})
    assert found.routes == [
        {"index": 0, "match": {"team": "db"}, "matchers": ['severity=~"critical|page"'], "notify": ["slack/a"],
         "matched": True, "why": "all matchers fit"},
        {"index": 1, "match": {"team": "db"}, "matchers": [], "notify": ["slack/a", "slack/b"],
         "matched": True, "why": "all matchers fit"},
        {"index": 2, "match": {}, "matchers": [], "notify": ["slack/c"],
         "matched": False, "why": "an earlier route matched without continue"},
    ]  # fmt: skip
    assert found.plans == [
        {"name": "dlq", "matchers": [], "matched": False, "takes_alert": False,
         "why": ["alertname: wanted 'DLQ', got 'Backlog'"], "values": {}},
        {"name": "any", "matchers": ['alertname=~"DLQ|Backlog"'], "matched": True, "takes_alert": False,
         "why": ["label queue does not match its pattern"], "values": {}},
    ]  # fmt: skip


def test_explain_a_route_that_fails_after_one_that_stopped_keeps_its_own_reason() -> None:
    found = explain(CONFIG, {"team": "ui", "alertname": "DLQ", "dlq": "dlq:a-1", "env": "prod"})
    assert [(r["matched"], r["why"]) for r in found.routes] == [
        (False, ["team: wanted 'db', got 'ui'", 'severity=~"critical|page" failed: severity is missing']),
        (False, ["team: wanted 'db', got 'ui'"]),
        (True, "all matchers fit"),
    ]
    found = explain(CONFIG, {"team": "db", "alertname": "DLQ", "dlq": "dlq:a-1", "env": "prod"})
    # route 1 stops the walk; the catch-all after it is reported as matching but not reached
    assert [(r["matched"], r["why"]) for r in found.routes] == [
        (False, ['severity=~"critical|page" failed: severity is missing']),
        (True, "all matchers fit"),
        (False, "an earlier route matched without continue"),
    ]
    assert found.plans[0] == {
        "name": "dlq", "matchers": [], "matched": True, "takes_alert": True,
        "why": "all matchers and label patterns fit",
        "values": {"dlq": "dlq:a-1", "name": "a", "shard": "-1", "env": "prod"},
    }  # fmt: skip
    assert found.plans[1] == {
        "name": "any", "matchers": ['alertname=~"DLQ|Backlog"'], "matched": True, "takes_alert": False,
        "why": ["label queue is missing"], "values": {},
    }  # fmt: skip


def test_explain_after_a_stopping_route_a_failing_route_shows_its_mismatch() -> None:
    config = ReceiverConfig.model_validate({
        "auth": {"bearer_token": "t"},
        "notifiers": {"slack": [{"name": "a", "webhook_url": "http://127.0.0.1:9/a"}]},
        "routes": [{"match": {}, "notify": ["slack/a"]}, {"match": {"x": "1"}, "notify": ["slack/a"]}],
    })  # fmt: skip
    assert [(r["matched"], r["why"]) for r in explain(config, {"x": "2"}).routes] == [
        (True, "all matchers fit"),
        (False, ["x: wanted '1', got '2'"]),
    ]


def test_a_plan_that_does_not_match_leaves_the_later_plans_their_turn() -> None:
    decision = decide(CONFIG, {"alertname": "Backlog", "queue": "mail"})
    assert [(m.plan.name, m.values) for m in decision.plans] == [("any", {"queue": "mail"})]
    assert decision.rejected == ()
