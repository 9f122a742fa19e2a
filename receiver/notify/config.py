"""The ``notifiers:`` config section: Slack incoming webhooks and SMTP email, each with a name.

Secrets (webhook URLs, SMTP passwords) follow the ``x`` / ``x_env`` / ``x_file`` convention and are
resolved when the notifiers are built, so a missing secret fails at startup, not at 3 a.m.
"""

from __future__ import annotations

from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Literal

from opsloop.receiver.domain import notifier_key
from pydantic import Field, field_validator, model_validator

from opsloop.configfile import StrictModel
from opsloop.durations import Duration
from opsloop.secrets import OptionalSecret, Secret, SecretEnv, SecretFile, SecretsModel

NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


class SlackTemplates(StrictModel):
    """User template files replacing the built-in ones (rendered in a sandbox)."""

    title: Path | None = None
    text: Path | None = None


class EmailTemplates(StrictModel):
    text: Path | None = None
    html: Path | None = None


class SlackConfig(SecretsModel):
    name: str = Field(pattern=NAME_PATTERN)
    webhook_url: Secret = None
    webhook_url_env: SecretEnv = None
    webhook_url_file: SecretFile = None
    timeout: Duration = 10.0
    channel: str | None = None
    username: str | None = None
    templates: SlackTemplates = SlackTemplates()

    def resolve_url(self) -> str:
        url = self.secret("webhook_url")
        if not url or not url.startswith(("https://", "http://")):
            raise ValueError("the webhook URL must start with https:// or http://")
        return url.strip()

    def secret_problems(self) -> list[tuple[str, str]]:
        """Also a URL that is read but is not one, named by the key it came from (at load)."""
        problems = super().secret_problems()
        if not problems:
            try:
                self.resolve_url()
            except ValueError as exc:
                key = next(k for k in ("webhook_url", "webhook_url_env", "webhook_url_file") if getattr(self, k))
                problems.append((key, str(exc)))
        return problems


class SmtpConfig(SecretsModel):
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    starttls: Literal["required", "opportunistic", "off"] = "required"
    tls: bool = False
    username: str | None = None
    password: OptionalSecret = None
    password_env: SecretEnv = None
    password_file: SecretFile = None
    ca_file: Path | None = None
    timeout: Duration = 30.0

    @field_validator("starttls", mode="before")
    @classmethod
    def _yaml_booleans(cls, value: object) -> object:
        """YAML 1.1 reads an unquoted ``off`` as false (and ``on`` as true): take them as meant."""
        return {False: "off", True: "required"}.get(value, value) if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _consistent(self) -> SmtpConfig:
        if self.tls and self.starttls != "off":
            raise ValueError("tls: true (implicit TLS) needs starttls: off")
        given = any(s is not None for s in (self.password, self.password_env, self.password_file))
        if self.username is not None and not given:
            raise ValueError("set exactly one of password, password_env, password_file")
        if self.username is None and given:
            raise ValueError("a password needs a username")
        return self


def _check_address(value: str) -> str:
    _, addr = parseaddr(value)
    if "@" not in addr or not addr.split("@", 1)[1]:
        raise ValueError(f"expected an email address, got {value!r}")
    Address(addr_spec=addr)  # rejects characters an address cannot hold
    return value


class EmailConfig(StrictModel):
    name: str = Field(pattern=NAME_PATTERN)
    smtp: SmtpConfig
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    subject: str | None = None
    templates: EmailTemplates = EmailTemplates()

    model_config = StrictModel.model_config | {"populate_by_name": True}

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        return _check_address(value)

    @field_validator("to")
    @classmethod
    def _recipients(cls, value: list[str]) -> list[str]:
        return [_check_address(v) for v in value]


class NotifiersConfig(StrictModel):
    slack: list[SlackConfig] = []
    email: list[EmailConfig] = []

    @model_validator(mode="after")
    def _unique_names(self) -> NotifiersConfig:
        for kind, entries in (("slack", self.slack), ("email", self.email)):
            names = [e.name for e in entries]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{kind}: duplicate notifier names: {', '.join(duplicates)}")
        return self

    def names(self) -> list[str]:
        """Every notifier's key, as routes and plans refer to it: ``slack/oncall``, ``email/oncall``."""
        return [notifier_key("slack", s.name) for s in self.slack] + [notifier_key("email", e.name) for e in self.email]
