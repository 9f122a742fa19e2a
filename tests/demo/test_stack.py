"""The demo stack's receiver config: real Slack and e-mail targets are added from the environment."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml
from opsloop.demo.stack import LoopStack, external_notifiers
from opsloop.receiver.config import load_config


def test_no_environment_means_local_sinks_only():
    assert external_notifiers({}) == {"slack": [], "email": []}


def test_configured_targets_join_routes_and_escalation(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPSLOOP_DEMO_SLACK_WEBHOOK_URL", "https://hooks.slack.invalid/services/T/B/X")
    monkeypatch.setenv("OPSLOOP_DEMO_SMTP_HOST", "smtp.example.invalid")
    monkeypatch.setenv("OPSLOOP_DEMO_SMTP_USERNAME", "alerts")
    monkeypatch.setenv("OPSLOOP_DEMO_SMTP_PASSWORD", "s3cret")
    monkeypatch.setenv("OPSLOOP_DEMO_EMAIL_FROM", "opsloop@example.invalid")
    monkeypatch.setenv("OPSLOOP_DEMO_EMAIL_TO", "me@example.invalid, you@example.invalid")
    stack = LoopStack(Path(tempfile.mkdtemp(prefix="opsloop-stack-test-")))
    stack.secrets.mkdir()
    stack.smtp.start()
    try:
        text = yaml.safe_dump(stack.receiver_config())
        assert "s3cret" not in text  # the password stays in the environment
        path = stack.workdir / "receiver.yml"
        path.write_text(text)
        config = load_config(path)
    finally:
        stack.smtp.stop()
        stack.cleanup()
    assert config.routes[0].notify == ["slack/oncall", "email/oncall", "slack/team", "email/team"]
    assert config.recovery[0].escalate == config.routes[0].notify
    (team_mail,) = [e for e in config.notifiers.email if e.name == "team"]
    assert team_mail.to == ["me@example.invalid", "you@example.invalid"]
    assert team_mail.smtp.starttls == "required"
    assert team_mail.smtp.secret("password") == "s3cret"
