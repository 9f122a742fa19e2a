"""Config loading shared by both programs: every problem of a file in one run, in the file's own indices."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from opsloop.receiver.config import load_config

from opsloop.configfile import ConfigError


def problems(tmp_path: Path, config: dict[str, object]) -> list[str]:
    path = tmp_path / "receiver.yml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    return raised.value.problems


def test_entries_after_a_broken_one_keep_their_index(tmp_path: Path) -> None:
    """A broken entry is left out so the rest is still checked, and later entries are named as in the file."""
    (tmp_path / "token").write_text("t")
    found = problems(tmp_path, {
        "auth": {"bearer_token_file": str(tmp_path / "token")},
        "notifiers": {"slack": [
            {"name": "a"},
            {"name": "b", "webhook_url_file": str(tmp_path / "missing")},
            {"name": "c", "webhook_url": "https://hooks.slack.invalid/c"},
        ]},
        "routes": [{"match": {}}, {"match": {}, "notify": ["slack/c", "slack/zz"]}],
    })  # fmt: skip
    missing = tmp_path / "missing"
    assert found == [
        "notifiers.slack[0]: set exactly one of webhook_url, webhook_url_env, webhook_url_file, "
        "token, token_env, token_file",
        "routes[0].notify: required key is missing",
        f"notifiers.slack[1].webhook_url_file: cannot read secret file {missing}: No such file or directory",
        "routes[1].notify[1]: unknown notifier 'slack/zz' (known: ['slack/b', 'slack/c'])",
    ]


def test_a_webhook_url_that_is_not_one_is_named_by_its_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSLOOP_TEST_SLACK_URL", "hooks.slack.com/services/secret")
    found = problems(tmp_path, {
        "auth": {"bearer_token": "t"},
        "notifiers": {"slack": [{"name": "ui", "webhook_url_env": "OPSLOOP_TEST_SLACK_URL"}]},
    })  # fmt: skip
    assert found == ["notifiers.slack[0].webhook_url_env: the webhook URL must start with https:// or http://"]


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"worker": {"concurrency": 0}}, "worker.concurrency: expected a value >= 1"),
        ({"worker": {"concurrency": 1.5}}, "worker.concurrency: expected an integer"),
        ({"store": 5}, "store: expected a string"),
        ({"routes": {}}, "routes: expected a list"),
        ({"routes": [{"match": {}, "notify": []}]}, "routes[0].notify: expected at least 1 entry"),
        ({"notifiers": {"slack": [{"name": "bad name", "webhook_url": "https://x"}]}},
         "notifiers.slack[0].name: expected text matching ^[A-Za-z0-9_.-]{1,64}$, got 'bad name'"),
        ({"notifiers": {"email": [{"name": "e", "from": "a@b.c", "to": ["d@e.f"],
                                   "smtp": {"host": "h", "starttls": "sometimes"}}]}},
         "notifiers.email[0].smtp.starttls: expected one of required, opportunistic, off, got 'sometimes'"),
        ({"recovery": [{"name": "p", "match": {"a": "b"}, "actions": [{"type": "reboot"}]}]},
         "recovery[0].actions[0]: unknown type 'reboot' (expected one of dlq_requeue, cache_clear, redis_set, "
         "http, command, sql, requeue_failed, purge_failed)"),
    ],
)  # fmt: skip
def test_messages_say_what_is_expected(tmp_path: Path, section: dict[str, object], problem: str) -> None:
    found = problems(tmp_path, {"auth": {"bearer_token": "t"}, **section})
    assert problem in found
    for pydantic_words in ("Input should be", "String should", "Field required", "Extra inputs", "List should"):
        assert not any(pydantic_words in line for line in found)
