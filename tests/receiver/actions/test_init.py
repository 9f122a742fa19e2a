from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opsloop.receiver.actions import build_action, template_fields

from opsloop.secrets import SecretError

CONFIGS = {
    "dlq_requeue": {"redis": "redis://127.0.0.1:6379/0", "from": "{dlq}", "to": "queue:{name}"},
    "cache_clear": {"redis": "redis://127.0.0.1:6379/0", "pattern": "cache:{id}:*"},
    "redis_set": {"redis": "redis://127.0.0.1:6379/0", "key": "maintenance:{app}", "value": "{level}", "ttl": "5m"},
    "http": {"url": "http://127.0.0.1:9/restart/{service}", "body": {"why": ["{alertname}", {"at": "{instance}"}]}},
    "command": {"argv": ["/bin/true", "{unit}"], "env": {"REASON": "{alertname}"}},
    "sql": {"dsn": "postgresql://127.0.0.1/x", "statement": "SELECT %(app)s, %(id)s, '100%%'"},
}

FIELDS = {
    "dlq_requeue": {"dlq", "name"},
    "cache_clear": {"id"},
    "redis_set": {"app", "level"},
    "http": {"service", "alertname", "instance"},
    "command": {"unit", "alertname"},
    "sql": {"app", "id"},
}
"""Written by hand from CONFIGS: every placeholder each template field holds, nested JSON and env included."""


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_build_action_returns_an_action_of_that_type(parse_action: Callable[..., Any], kind: str) -> None:
    config = parse_action(type=kind, **CONFIGS[kind])
    action = build_action(config)
    assert action.type == kind
    assert template_fields(config) == FIELDS[kind]


def test_template_fields_of_the_issue_example(parse_action: Callable[..., Any]) -> None:
    assert template_fields(parse_action(type="dlq_requeue", **CONFIGS["dlq_requeue"])) == {"dlq", "name"}


def test_a_missing_secret_fails_when_the_action_is_built(
    parse_action: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPSLOOP_TEST_REDIS_URL", raising=False)
    with pytest.raises(SecretError, match="OPSLOOP_TEST_REDIS_URL is not set"):
        build_action(parse_action(type="redis_set", redis_env="OPSLOOP_TEST_REDIS_URL", key="k", value="v", ttl=1))
    with pytest.raises(SecretError, match="cannot read secret file"):
        build_action(parse_action(type="sql", dsn_file=str(tmp_path / "absent"), statement="SELECT 1"))
    with pytest.raises(SecretError, match="OPSLOOP_TEST_TOKEN"):
        build_action(
            parse_action(type="http", url="http://h/x", headers={"Authorization": {"value_env": "OPSLOOP_TEST_TOKEN"}})
        )


def test_a_malformed_redis_url_from_a_secret_fails_when_built(
    parse_action: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLOOP_TEST_REDIS_URL", "http://not-redis")
    with pytest.raises(ValueError, match="Redis URL"):
        build_action(parse_action(type="cache_clear", redis_env="OPSLOOP_TEST_REDIS_URL", pattern="cache:*"))
