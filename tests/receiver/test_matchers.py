"""Alertmanager matchers, checked against Alertmanager itself: amtool parses and routes the same strings.

Three oracles: ``amtool check-config`` says which matcher strings are valid, ``amtool config routes show``
prints the values it parsed, and ``amtool config routes test`` says which routes a label set reaches.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from opsloop.receiver.config import ReceiverConfig, load_config
from opsloop.receiver.matchers import parse_matchers
from opsloop.receiver.routing import explain, route_notifiers

from opsloop.configfile import ConfigError


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["amtool", *args], capture_output=True, text=True, timeout=30, check=False)


def am_config(tmp_path: Path, routes: list[dict[str, object]]) -> Path:
    """An Alertmanager config with one receiver per route (``r0``, ``r1``, ...) under a ``none`` root."""
    children = [
        {"receiver": f"r{i}", "matchers": r["matchers"], "continue": r.get("continue", False)}
        for i, r in enumerate(routes)
    ]
    receivers = [{"name": "none"}] + [{"name": f"r{i}"} for i in range(len(routes))]
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump({"route": {"receiver": "none", "routes": children}, "receivers": receivers}))
    return path


def receiver_config(routes: list[dict[str, object]]) -> ReceiverConfig:
    notifiers = [{"name": f"r{i}", "webhook_url": f"http://127.0.0.1:9/{i}"} for i in range(len(routes))]
    return ReceiverConfig.model_validate({
        "auth": {"bearer_token": "t"},
        "notifiers": {"slack": notifiers},
        "routes": [{**r, "notify": [f"slack/r{i}"]} for i, r in enumerate(routes)],
    })  # fmt: skip


SYNTAX = [
    'foo="bar"', "foo=bar", "foo=", 'foo=""', 'foo!="bar"', 'foo=~"b.*"', 'foo!~"b.*"',
    '{foo="bar", baz=~"qux|quux"}', '{foo="bar",}', 'foo=bar, baz!=qux', 'quote="She said: \\"hi, there\\""',
    'a=b\\', 'a="b\\\\c"', 'a="x\\ny"', "  foo  =~  bar  ", "le:a_b=1",
    # invalid in Alertmanager as well
    ' {a="b"}', "a=b,,c=d", 'a="b', 'a=b"c', "a=~(?=x)", 'a=~"x\\\\1"', 'a=~"["', "1a=b", "a==b", "a", "a~b",
    'a=~"(?<=x)y"', "a=~(?P=n)",
    # RE2's inline flags: Python accepts them only at the very start of a pattern
    'a=~"(?i)abc"', 'a=~"x(?i)y|z"', 'a=~"(?i-s)a.b"', 'a=~"[(?i)]"',
]  # fmt: skip


@pytest.mark.parametrize("text", SYNTAX)
def test_validity_agrees_with_amtool(tmp_path: Path, text: str) -> None:
    verdict = amtool("check-config", str(am_config(tmp_path, [{"matchers": [text]}])))
    try:
        parse_matchers(text)
        ours = True
    except ValueError:
        ours = False
    assert ours == (verdict.returncode == 0), verdict.stdout + verdict.stderr


def test_parsed_values_agree_with_amtool(tmp_path: Path) -> None:
    texts = SYNTAX[:16]
    routes = [{"matchers": [t]} for t in texts]
    shown = amtool("config", "routes", "show", f"--config.file={am_config(tmp_path, routes)}").stdout
    lines = [line for line in shown.splitlines() if "receiver: r" in line]
    for text, line in zip(texts, lines, strict=True):
        # amtool prints each route's matchers sorted by name, in {name op "quoted"} notation.
        printed = line.split("{", 1)[1].rsplit("}", 1)[0]
        assert ",".join(sorted(str(m) for m in parse_matchers(text))) == printed, text


ROUTES = [
    {"matchers": ['severity=~"critical|page"'], "continue": True},
    {"matchers": ['{team="a,b", env!~"dev|test.*"}']},
    {"matchers": ["service=", 'tier!="web"'], "continue": True},
    {"matchers": ['queue=~"q[0-9]+"', 'queue!~"q1.*"']},
    {"matchers": ['zone!=""']},
    {"matchers": ['env=~"x(?i)ab|c"', 'tier=~"(?i)DB"']},
]
LABELS = [
    {"severity": "critical"}, {"severity": "page", "team": "a,b"}, {"severity": "critical-ish"},
    {"severity": "xcritical"}, {"team": "a,b"}, {"team": "a,b", "env": "dev"}, {"team": "a,b", "env": "devel"},
    {"team": "a,b", "env": "testing"}, {"team": "a"}, {"tier": "db"}, {"tier": "web"}, {"service": "x"},
    {"service": "x", "queue": "q7"}, {"queue": "q7", "service": "y"}, {"queue": "q12", "service": "y"},
    {"queue": "q7x", "service": "y"}, {"zone": "eu"}, {"zone": "eu", "service": "s"}, {},
    {"service": "s", "env": "xAB", "tier": "db"}, {"service": "s", "env": "XAB", "tier": "db"},
    {"service": "s", "env": "C", "tier": "Db"}, {"service": "s", "env": "xab", "tier": "web"},
]  # fmt: skip


def amtool_route(config: Path, labels: dict[str, str]) -> tuple[str, ...]:
    args = [f"{k}={json.dumps(v)}" for k, v in labels.items()]
    done = amtool("config", "routes", "test", f"--config.file={config}", *args)
    receivers = tuple(done.stdout.strip().split(","))
    return () if receivers == ("none",) else receivers


def test_routing_agrees_with_amtool(tmp_path: Path) -> None:
    config = am_config(tmp_path, ROUTES)
    ours = receiver_config(ROUTES)
    for labels in LABELS:
        chosen = tuple(n.removeprefix("slack/") for n in route_notifiers(ours.routes, labels))
        assert chosen == amtool_route(config, labels), labels
    # the table exercises every route, and the no-route case
    assert {r for labels in LABELS for r in route_notifiers(ours.routes, labels)} == set(ours.notifier_names())


def test_missing_label_reads_as_empty_and_regexes_are_anchored() -> None:
    (empty,) = parse_matchers("foo=")
    (absent,) = parse_matchers('foo!~".+"')
    (partial,) = parse_matchers('foo=~"ab"')
    assert empty.matches({})
    assert absent.matches({})
    assert not absent.matches({"foo": "x"})
    assert partial.matches({"foo": "ab"})
    assert not partial.matches({"foo": "xab"})
    assert not partial.matches({"foo": "ab\n"})  # Go's $ does not match before a final newline


def test_explain_names_the_failed_matcher() -> None:
    config = receiver_config([{"matchers": ['severity=~"critical|page"', 'team="db"']}])
    found = explain(config, {"severity": "warning", "team": "db"})
    assert found.routes[0]["matched"] is False
    assert found.routes[0]["why"] == ["severity=~\"critical|page\" failed: severity='warning'"]
    assert found.routes[0]["matchers"] == ['severity=~"critical|page"', 'team="db"']
    assert explain(config, {"team": "db"}).routes[0]["why"] == ['severity=~"critical|page" failed: severity is missing']


def test_invalid_matchers_are_config_errors_with_their_key_path(tmp_path: Path) -> None:
    path = tmp_path / "receiver.yml"
    action = {"type": "redis_set", "redis": "redis://127.0.0.1:1/0", "key": "k", "value": "1", "ttl": 60}
    path.write_text(
        yaml.safe_dump(
            {
                "auth": {"bearer_token": "t"},
                "notifiers": {"slack": [{"name": "a", "webhook_url": "http://127.0.0.1:9/a"}]},
                "routes": [{"matchers": ['team="a"', 'severity=~"("'], "notify": ["slack/a"]}],
                "recovery": [
                    {"name": "p", "matchers": 'alertname="A", x=~"(?=y)"', "actions": [action]},
                    {"name": "q", "actions": [action]},
                ],
            }
        )
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = caught.value.problems
    assert len(problems) == 3, problems
    assert problems[0].startswith("routes[0].matchers[1]: invalid regular expression '('")
    assert problems[1].startswith("recovery[0].matchers[0]: regular expression '(?=y)' uses lookaround")
    assert problems[2] == "recovery[1]: a plan needs match: or matchers:, or it would take every alert"


def test_plans_take_alerts_by_matchers() -> None:
    action = {"type": "redis_set", "redis": "redis://127.0.0.1:1/0", "key": "k", "value": "1", "ttl": 60}
    config = ReceiverConfig.model_validate({
        "auth": {"bearer_token": "t"},
        "recovery": [{"name": "p", "match": {"alertname": "DLQ"}, "matchers": ['severity!="info"'],
                      "actions": [action]}],
    })  # fmt: skip
    takes = [p["takes_alert"] for p in explain(config, {"alertname": "DLQ", "severity": "critical"}).plans]
    assert takes == [True]
    found = explain(config, {"alertname": "DLQ", "severity": "info"}).plans[0]
    assert found["why"] == ["severity!=\"info\" failed: severity='info'"]
