"""The notifiers section: the issue's example, secret conventions, clear errors, and building notifiers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from opsloop.receiver.notify import NotifiersConfig, NotifierSetupError, build_notifiers, notifier_problems
from opsloop.receiver.notify.config import EmailConfig
from opsloop.receiver.notify.email import EmailNotifier
from opsloop.receiver.notify.slack import SlackNotifier

from opsloop.configfile import ConfigError, StrictModel, load_model

ISSUE_EXAMPLE = """
notifiers:
  slack:
    - name: oncall
      webhook_url_file: {secret_dir}/slack-oncall
    - name: ui-team
      webhook_url_env: SLACK_UI_URL
  email:
    - name: oncall
      smtp: {{host: smtp.example.com, port: 587, starttls: required, username: alerts,
             password_file: {secret_dir}/smtp}}
      from: alerts@example.com
      to: [oncall@example.com]
"""


class Section(StrictModel):
    notifiers: NotifiersConfig


def load(tmp_path: Path, text: str) -> NotifiersConfig:
    path = tmp_path / "receiver.yml"
    path.write_text(text)
    return load_model(path, Section).notifiers


def problems(tmp_path: Path, notifiers: object) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, yaml.safe_dump({"notifiers": notifiers}))
    return raised.value.problems


def test_issue_example_builds_every_notifier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "slack-oncall").write_text("https://hooks.slack.com/services/T1/B1/abc\n")
    (tmp_path / "smtp").write_text("s3cret\n")
    monkeypatch.setenv("SLACK_UI_URL", "https://hooks.slack.com/services/T1/B2/def")
    config = load(tmp_path, ISSUE_EXAMPLE.format(secret_dir=tmp_path))
    assert config.names() == ["slack/oncall", "slack/ui-team", "email/oncall"]
    email = config.email[0]
    assert (email.smtp.starttls, email.smtp.tls, email.sender, email.to) == (
        "required", False, "alerts@example.com", ["oncall@example.com"]
    )  # fmt: skip
    assert email.smtp.secret("password") == "s3cret"
    notifiers = build_notifiers(config)
    assert {key: type(n) for key, n in notifiers.items()} == {
        "slack/oncall": SlackNotifier,
        "slack/ui-team": SlackNotifier,
        "email/oncall": EmailNotifier,
    }
    assert [n.name for n in notifiers.values()] == list(notifiers)


def test_smtp_defaults_are_safe() -> None:
    email = EmailConfig.model_validate({"name": "x", "smtp": {"host": "mail"}, "from": "a@b.c", "to": ["d@e.f"]})
    assert (email.smtp.port, email.smtp.starttls, email.smtp.tls, email.smtp.timeout) == (587, "required", False, 30.0)


def test_webhook_url_or_token_must_be_set_exactly_once(tmp_path: Path) -> None:
    options = "webhook_url, webhook_url_env, webhook_url_file, token, token_env, token_file"
    assert problems(tmp_path, {"slack": [{"name": "a"}]}) == [f"notifiers.slack[0]: set exactly one of {options}"]
    both = {"name": "a", "webhook_url": "https://x", "token_env": "X", "channel": "C0123456789"}
    assert problems(tmp_path, {"slack": [both]}) == [
        f"notifiers.slack[0]: set exactly one of {options} (got webhook_url, token_env)"
    ]


@pytest.mark.parametrize("channel", [None, "#alerts", "c0123456789", "C01"])
def test_app_mode_needs_a_channel_id(tmp_path: Path, channel: str | None) -> None:
    slack = {"name": "a", "token_file": str(tmp_path / "token"), **({"channel": channel} if channel else {})}
    assert problems(tmp_path, {"slack": [slack]}) == [
        "notifiers.slack[0]: a bot token (app mode) needs channel: a channel id such as C0123456789"
    ]


def test_bad_values_are_reported_with_key_paths(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        {
            "email": [
                {"name": "bad name", "smtp": {"host": "m", "port": "x", "starttls": "maybe"}, "from": "nobody",
                 "to": [], "cc": ["x@y.z"]},
            ]
        },
    )  # fmt: skip
    assert "notifiers.email[0].name: expected text matching ^[A-Za-z0-9_.-]{1,64}$, got 'bad name'" in found
    assert "notifiers.email[0].smtp.port: expected an integer" in found
    assert "notifiers.email[0].smtp.starttls: expected one of required, opportunistic, off, got 'maybe'" in found
    assert "notifiers.email[0].from: expected an email address, got 'nobody'" in found
    assert "notifiers.email[0].to: expected at least 1 entry" in found
    assert "notifiers.email[0].cc: unknown key" in found


@pytest.mark.parametrize(
    ("smtp", "message"),
    [
        ({"tls": True}, "tls: true (implicit TLS) needs starttls: off"),
        ({"password": "x"}, "a password needs a username"),
        ({"username": "u"}, "set exactly one of password, password_env, password_file"),
    ],
)
def test_smtp_combinations_that_make_no_sense(tmp_path: Path, smtp: dict[str, object], message: str) -> None:
    email = {"name": "m", "smtp": {"host": "mail", **smtp}, "from": "a@b.c", "to": ["d@e.f"]}
    assert problems(tmp_path, {"email": [email]}) == [f"notifiers.email[0].smtp: {message}"]


def test_duplicate_names_are_rejected(tmp_path: Path) -> None:
    slack = [{"name": "oncall", "webhook_url": "https://a"}, {"name": "oncall", "webhook_url": "https://b"}]
    assert problems(tmp_path, {"slack": slack}) == ["notifiers: slack: duplicate notifier names: oncall"]


def test_missing_secret_names_the_notifier_not_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_SLACK_URL", raising=False)
    config = NotifiersConfig.model_validate({"slack": [{"name": "ui", "webhook_url_env": "NO_SUCH_SLACK_URL"}]})
    with pytest.raises(NotifierSetupError, match=r"^slack/ui: environment variable NO_SUCH_SLACK_URL is not set$"):
        build_notifiers(config)


def test_webhook_url_must_be_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_URL", "hooks.slack.com/services/secret")
    config = NotifiersConfig.model_validate({"slack": [{"name": "ui", "webhook_url_env": "SLACK_URL"}]})
    with pytest.raises(NotifierSetupError) as raised:
        build_notifiers(config)
    assert str(raised.value) == "slack/ui: the webhook URL must start with https:// or http://"


def test_broken_user_template_fails_at_build_time(tmp_path: Path) -> None:
    template = tmp_path / "broken.html.j2"
    template.write_text("{% for %}")
    config = NotifiersConfig.model_validate(
        {
            "email": [
                {"name": "oncall", "smtp": {"host": "mail", "starttls": "off"}, "from": "a@b.c", "to": ["d@e.f"],
                 "templates": {"html": str(template)}},
            ]
        }
    )  # fmt: skip
    with pytest.raises(NotifierSetupError, match=r"^email/oncall: template .*broken\.html\.j2 does not compile"):
        build_notifiers(config)


@pytest.mark.parametrize("content", [None, "not a certificate"])
def test_unusable_ca_file_fails_at_build_time(tmp_path: Path, content: str | None) -> None:
    ca_file = tmp_path / "ca.pem"
    if content is not None:
        ca_file.write_text(content)
    smtp = {"host": "mail", "ca_file": str(ca_file)}
    config = NotifiersConfig.model_validate({"email": [{"name": "m", "smtp": smtp, "from": "a@b.c", "to": ["d@e.f"]}]})
    with pytest.raises(NotifierSetupError, match=r"^email/m: cannot load ca_file .*ca\.pem: "):
        build_notifiers(config)


def test_notifier_problems_names_each_template_and_ca_file_by_key_path(tmp_path: Path) -> None:
    """A replacement in templates_dir is named by that key once, however many notifiers use it; a
    notifier with two broken templates gets a line for each; an unusable ca_file names its entry."""
    (tmp_path / "slack.md.j2").write_text("{% if %}")
    broken = tmp_path / "broken.txt.j2"
    broken.write_text("{{ x }")
    email = {"smtp": {"host": "mail", "starttls": "off"}, "from": "a@b.c", "to": ["d@e.f"]}
    config = NotifiersConfig.model_validate({
        "slack": [{"name": "a", "webhook_url": "http://127.0.0.1:1/a"}, {"name": "b", "webhook_url": "http://127.0.0.1:1/b"}],
        "email": [
            {"name": "x", **email, "subject": "{% end %}", "templates": {"text": str(broken)}},
            {"name": "y", **email, "smtp": {"host": "mail", "ca_file": str(tmp_path / "no-ca.pem")}},
        ],
    })  # fmt: skip
    problems = notifier_problems(config, tmp_path)
    assert problems == [
        "templates_dir: template slack.md.j2 does not compile: Expected an expression, got 'end of statement block'",
        "notifiers.email[0].subject: inline template does not compile: Encountered unknown tag 'end'.",
        f"notifiers.email[0].templates.text: template {broken} does not compile: unexpected '}}'",
        f"notifiers.email[1]: cannot load ca_file {tmp_path / 'no-ca.pem'}: No such file or directory",
    ]
    assert notifier_problems(config) == problems[1:]


@pytest.mark.parametrize(("written", "meant"), [("off", "off"), ("no", "off"), ("on", "required"), ("'off'", "off")])
def test_unquoted_yaml_booleans_for_starttls(written: str, meant: str) -> None:
    smtp = yaml.safe_load(f"{{host: mail, starttls: {written}}}")  # YAML 1.1: off and no are false, on is true
    email = EmailConfig.model_validate({"name": "x", "smtp": smtp, "from": "a@b.c", "to": ["d@e.f"]})
    assert email.smtp.starttls == meant
