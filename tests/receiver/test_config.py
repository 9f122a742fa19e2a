"""The receiver config: the issue's example loads, and cross-section mistakes are named by key path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from opsloop.receiver.config import DEFAULT_STORE, load_config

from opsloop.configfile import ConfigError

EXAMPLE = """
auth:
  bearer_token_file: {secrets}/opsloop-token
store: sqlite:///var/lib/opsloop/receiver.db
prometheus_url: http://127.0.0.1:9090
notifiers:
  slack:
    - name: oncall
      webhook_url_file: {secrets}/slack-oncall
    - name: ui-team
      webhook_url_env: SLACK_UI_URL
  email:
    - name: oncall
      smtp: {{host: smtp.example.com, port: 587, starttls: required, username: alerts, password_file: {secrets}/smtp}}
      from: alerts@example.com
      to: [oncall@example.com]
routes:
  - match: {{severity: critical}}
    notify: [slack/oncall, email/oncall]
  - match: {{team: ui}}
    notify: [slack/ui-team]
  - match: {{}}
    notify: [slack/oncall]
recovery:
  - name: requeue-dlq
    match: {{alertname: DLQEntriesIncreasing}}
    labels: {{dlq: "^dlq:(?P<name>[a-z0-9_-]{{1,64}})$"}}
    actions:
      - {{type: dlq_requeue, redis: redis://127.0.0.1:6379/0, from: "{{dlq}}", to: "queue:{{name}}", max_items: 100}}
    stages: [0s, 1m, 5m]
    verify: 'opsloop_dlq_length{{dlq="{{dlq}}"}} < 10'
    cooldown: 5m
    max_runs: {{per_hour: 3, per_day: 10}}
    escalate: [slack/oncall, email/oncall]
"""


def test_the_issue_example_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, secret in (("opsloop-token", "t0ken"), ("slack-oncall", "https://hooks.slack.invalid/a"), ("smtp", "pw")):
        (tmp_path / name).write_text(f"{secret}\n")
    monkeypatch.setenv("SLACK_UI_URL", "https://hooks.slack.invalid/ui")
    path = tmp_path / "receiver.yml"
    path.write_text(EXAMPLE.format(secrets=tmp_path))
    config = load_config(path)
    (plan,) = config.recovery
    assert config.store == DEFAULT_STORE
    assert plan.stages == [0.0, 60.0, 300.0]
    assert (plan.cooldown, plan.max_runs.per_hour, plan.max_runs.per_day) == (300.0, 3, 10)
    assert plan.template_values() == {"dlq", "name"}
    assert config.notifier_names() == ["slack/oncall", "slack/ui-team", "email/oncall"]
    assert [r.continue_ for r in config.routes] == [False, False, False]
    # Secrets are resolved at load: files lose one trailing newline.
    assert config.auth.secret("bearer_token") == "t0ken"
    assert config.notifiers.slack[1].secret("webhook_url") == "https://hooks.slack.invalid/ui"


def write(tmp_path: Path, data: dict[str, object]) -> Path:
    path = tmp_path / "receiver.yml"
    path.write_text(yaml.safe_dump({"auth": {"bearer_token": "t"}, **data}))
    return path


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"auth": {}}, "auth: set exactly one of bearer_token, bearer_token_env, bearer_token_file, basic_auth"),
        ({"store": "mysql://x"}, "store: expected sqlite:///path or postgresql://..."),
        ({"recovery": [{"name": "p", "match": {"a": "b"}, "labels": {"x": "("}, "actions": []}]},
         "recovery[0].labels.x: invalid regular expression '(': missing ), unterminated subpattern at position 0"),
        ({"recovery": [{"name": "p", "match": {"a": "b"}, "stages": ["5m", "1m"],
                        "actions": [{"type": "redis_set", "redis": "redis://h", "key": "k", "value": "v", "ttl": 1}]}]},
         "recovery[0].stages: stages must be in ascending order"),
        ({"circuit_breaker": {"notify": ["email/x"]}},
         "circuit_breaker.notify[0]: unknown notifier 'email/x' (known: [])"),
        ({"recovery": [{"name": "p", "match": {"a": "b"}, "escalate": ["slack/x"],
                        "actions": [{"type": "redis_set", "redis": "redis://h", "key": "k", "value": "v", "ttl": 1}]}]},
         "recovery[0].escalate[0]: unknown notifier 'slack/x' (known: [])"),
    ],
)  # fmt: skip
def test_problems_name_their_key_path(tmp_path: Path, data: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, data))
    assert problem in caught.value.problems


def test_duplicate_plan_names_are_rejected(tmp_path: Path) -> None:
    plan = {"name": "p", "match": {"a": "b"},
            "actions": [{"type": "redis_set", "redis": "redis://h", "key": "k", "value": "v", "ttl": 1}]}  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, {"recovery": [plan, plan]}))
    assert caught.value.problems == ["recovery[1].name: duplicate plan name 'p'"]


def test_the_deploy_example_loads_when_its_secrets_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "receiver.example.yml"
    for name in ("opsloop-token", "opsloop-admin-token", "slack-oncall", "slack-ui-team", "smtp"):
        (tmp_path / name).write_text("https://hooks.slack.invalid/x\n" if name.startswith("slack") else "s3cret\n")
    text = example.read_text().replace("/var/lib/opsloop-receiver/", f"{tmp_path}/")
    (tmp_path / "receiver.yml").write_text(text)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    config = load_config(tmp_path / "receiver.yml")
    assert [plan.name for plan in config.recovery] == ["requeue-dlq"]
    assert config.routes[0].notify == ["slack/oncall", "email/oncall"]


@pytest.mark.parametrize(
    ("verify", "bad"),
    [
        ('opsloop_dlq_length{dlq="{dlq}"} < 10', []),
        ("opsloop_dlq_length{dlq='{dlq}'} < 10", ["dlq"]),
        ("opsloop_dlq_length{dlq=`{dlq}`} < 10", ["dlq"]),
        ('opsloop_dlq_length{dlq="dlq"} < {dlq}', ["dlq"]),
        ('m{a="x\\"{dlq}"}', []),
    ],
)
def test_verify_placeholders_must_be_in_double_quotes(verify: str, bad: list[str]) -> None:
    """Values are escaped for double-quoted PromQL strings only; anywhere else they could inject PromQL."""
    from opsloop.receiver.config import unquoted_placeholders

    assert unquoted_placeholders(verify) == bad
