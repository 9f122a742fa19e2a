from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opsloop.receiver.actions import build_action
from opsloop.receiver.actions.config import ActionConfig, DlqRequeueConfig, bind_names
from pydantic import ValidationError

from opsloop.configfile import ConfigError, StrictModel, load_model

ISSUE_EXAMPLE = {
    "type": "dlq_requeue",
    "redis": "redis://127.0.0.1:6379/0",
    "from": "{dlq}",
    "to": "queue:{name}",
    "max_items": 100,
}


class Plan(StrictModel):
    actions: list[ActionConfig]


def test_the_issue_example_validates_with_defaults(parse_action: Callable[..., Any]) -> None:
    config = parse_action(**ISSUE_EXAMPLE)
    assert isinstance(config, DlqRequeueConfig)
    assert (config.from_, config.to, config.max_items) == ("{dlq}", "queue:{name}", 100)
    assert (config.timeout, config.dry_run, config.position, config.batch) == (10.0, False, "consumer_end", 100)
    assert config.template_fields() == {"dlq", "name"}


def test_from_is_also_accepted_by_its_python_name(parse_action: Callable[..., Any]) -> None:
    config = parse_action(**{**{k: v for k, v in ISSUE_EXAMPLE.items() if k != "from"}, "from_": "dlq:x"})
    assert config.from_ == "dlq:x"


def test_problems_are_reported_with_key_paths(tmp_path: Path) -> None:
    path = tmp_path / "plan.yml"
    path.write_text(
        """
actions:
  - {type: dlq_requeue, redis: "redis://127.0.0.1/0", from: "{dlq}", to: "q:{a.b}", max_items: many}
  - {type: http, url: "http://{host}/restart", timeout: 0s}
  - {type: command, argv: ["{program}"]}
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_model(path, Plan)
    problems = caught.value.problems
    assert "actions[0].dlq_requeue.max_items: expected an integer" in problems
    assert any(
        p.startswith("actions[0].dlq_requeue.to: 'q:{a.b}': placeholder {a.b} must be a plain") for p in problems
    )
    assert "actions[1].http.url: placeholders may appear in the path and query, not in the host" in problems
    assert "actions[1].http.timeout: expected a value > 0" in problems
    assert "actions[2].command.argv: the program (argv[0]) cannot contain placeholders" in problems


REDIS = {"redis": "redis://127.0.0.1:6379/0"}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"type": "dlq_requeue", "from": "a", "to": "b"}, "set exactly one of redis, redis_env, redis_file"),
        ({"type": "dlq_requeue", **REDIS, "redis_env": "R", "from": "a", "to": "b"}, "set at most one of redis"),
        ({"type": "dlq_requeue", "redis": "http://x", "from": "a", "to": "b"}, "expected a redis://"),
        ({"type": "dlq_requeue", **REDIS, "password": "p", "password_env": "P", "from": "a", "to": "b"}, "password"),
        ({"type": "dlq_requeue", **REDIS, "from": "{q}", "to": "{q}"}, "from and to must name different keys"),
        ({"type": "dlq_requeue", **REDIS, "from": "a", "to": "b", "position": "middle"}, "position"),
        ({"type": "cache_clear", **REDIS, "pattern": "*"}, "literal key prefix"),
        ({"type": "cache_clear", **REDIS, "pattern": "{prefix}:*"}, "literal key prefix"),
        ({"type": "redis_set", **REDIS, "key": "k", "value": "v"}, "ttl"),
        ({"type": "http", "url": "ftp://host/x"}, "expected an http:// or https:// URL"),
        ({"type": "http", "url": "http://h/x", "body": {"q": "{a[0]}"}}, "must be a plain name"),
        ({"type": "http", "url": "http://h/x", "headers": {"A": {"value": "x", "value_env": "Y"}}}, "exactly one"),
        ({"type": "http", "url": "http://h/x", "expect_status": [700]}, "expect_status"),
        ({"type": "command", "argv": []}, "argv"),
        ({"type": "command", "argv": ["/bin/true"], "pass_env": ["A-B"]}, "A-B"),
        ({"type": "sql", "dsn": "x", "statement": "SELECT %s"}, "use %(name)s bind parameters"),
        ({"type": "sql", "dsn": "x", "dsn_file": "/f", "statement": "SELECT 1"}, "set exactly one of dsn"),
        ({"type": "sql", "dsn": "x", "statement": "SELECT 1", "shell": "x"}, "shell"),
        ({"type": "flushall"}, "does not match any of the expected tags"),
        ({"type": "redis_set", "mode": "sentinel", "sentinels": ["h:1"], "key": "k", "value": "v", "ttl": 1},
         "mode: sentinel needs sentinels (host:port list) and primary_name"),
        ({"type": "redis_set", **REDIS, "seeds": ["redis://h:2"], "key": "k", "value": "v", "ttl": 1},
         "seeds apply to mode: cluster only"),
        ({"type": "redis_set", "mode": "cluster", "key": "k", "value": "v", "ttl": 1},
         "set exactly one of redis, redis_env, redis_file"),
        ({"type": "requeue_failed", "redis": "redis+cluster://h:1", "framework": "rq", "queue": "default"},
         "framework scripts derive key names inside Redis, which a Redis Cluster refuses"),
    ],
)  # fmt: skip
def test_invalid_configs_are_rejected(parse_action: Callable[..., Any], config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_action(**config)


@pytest.mark.parametrize(
    ("config", "fields"),
    [
        ({"type": "cache_clear", **REDIS, "pattern": "cache:{team}:{id}:*"}, {"team", "id"}),
        (
            {"type": "redis_set", **REDIS, "key": "maint:{service}", "value": "{reason}", "ttl": "5m"},
            {"service", "reason"},
        ),
        (
            {"type": "http", "url": "http://h/scale/{svc}?to={n}", "body": {"a": ["{x}", 1, {"b": "{y}"}], "c": True}},
            {"svc", "n", "x", "y"},
        ),
        ({"type": "command", "argv": ["/usr/bin/restart", "{unit}"], "env": {"REASON": "{why}"}}, {"unit", "why"}),
        ({"type": "sql", "dsn": "x", "statement": "SELECT %(a)s, '100%%', %(b)s, %(a)s"}, {"a", "b"}),
    ],
)
def test_template_fields_lists_every_name(
    parse_action: Callable[..., Any], config: dict[str, Any], fields: set[str]
) -> None:
    assert parse_action(**config).template_fields() == fields


def test_bind_names_accepts_literal_percent_and_all_psycopg_formats() -> None:
    assert bind_names("SELECT %(a)s, %(b)b, %(c)t WHERE x LIKE 'a%%'") == {"a", "b", "c"}
    with pytest.raises(ValueError, match="bind parameters"):
        bind_names("WHERE x LIKE 'a%'")


def test_durations_and_dry_run_are_parsed(parse_action: Callable[..., Any]) -> None:
    config = parse_action(type="redis_set", **REDIS, key="k", value="v", ttl="1h30m", timeout="250ms", dry_run=True)
    assert (config.ttl, config.timeout, config.dry_run) == (5400.0, 0.25, True)


def test_sentinel_actions_need_no_url_and_clusters_take_a_cluster_url(parse_action: Callable[..., Any]) -> None:
    sentinel = parse_action(
        type="redis_set",
        mode="sentinel",
        sentinels=["127.0.0.1:26379"],
        primary_name="main",
        key="k",
        value="v",
        ttl=1,
    )
    assert sentinel.redis is None
    cluster = parse_action(type="cache_clear", redis="redis+cluster://127.0.0.1:7000", pattern="cache:*")
    assert cluster.effective_mode(cluster.redis) == "cluster"


def test_a_cluster_url_from_a_secret_fails_framework_actions_when_built(
    parse_action: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLOOP_TEST_CLUSTER_URL", "redis+cluster://127.0.0.1:7000")
    config = parse_action(type="purge_failed", redis_env="OPSLOOP_TEST_CLUSTER_URL", framework="rq", queue="default",
                          older_than="1d")  # fmt: skip
    with pytest.raises(ValueError, match="purge_failed cannot run on a Redis Cluster"):
        build_action(config)
