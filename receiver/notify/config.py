"""The ``notifiers:`` config section: Slack incoming webhooks and SMTP email, each with a name.

Secrets (webhook URLs, SMTP passwords) follow the ``x`` / ``x_env`` / ``x_file`` convention and are
resolved when the notifiers are built, so a missing secret fails at startup, not at 3 a.m.
"""

from __future__ import annotations

import re
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Literal

from opsloop.receiver.domain import notifier_key
from pydantic import Field, field_validator, model_validator

from opsloop.configfile import StrictModel
from opsloop.durations import Duration
from opsloop.secrets import OptionalPassword, OptionalSecret, SecretEnv, SecretFile, SecretsModel, secret_keys

NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{8,}")


class SlackTemplates(StrictModel):
    """User template files replacing the built-in ones (rendered in a sandbox)."""

    title: Path | None = None
    text: Path | None = None


class EmailTemplates(StrictModel):
    text: Path | None = None
    html: Path | None = None


SLACK_API_URL = "https://slack.com/api/"
WEBHOOK_KEYS = secret_keys("webhook_url")
TOKEN_KEYS = secret_keys("token")


class SlackConfig(SecretsModel):
    """One Slack destination: an incoming webhook, or a bot token posting to a channel id (app mode).

    App mode posts with ``chat.postMessage`` and edits the same message with ``chat.update``; a webhook
    can only post new messages.
    """

    name: str = Field(pattern=NAME_PATTERN)
    webhook_url: OptionalSecret = None
    webhook_url_env: SecretEnv = None
    webhook_url_file: SecretFile = None
    token: OptionalSecret = None
    token_env: SecretEnv = None
    token_file: SecretFile = None
    api_url: str = SLACK_API_URL
    timeout: Duration = 10.0
    channel: str | None = None
    username: str | None = None
    templates: SlackTemplates = SlackTemplates()

    @model_validator(mode="after")
    def _one_destination(self) -> SlackConfig:
        given = [key for key in (*WEBHOOK_KEYS, *TOKEN_KEYS) if getattr(self, key) is not None]
        if len(given) != 1:
            got = f" (got {', '.join(given)})" if given else ""
            raise ValueError(f"set exactly one of {', '.join((*WEBHOOK_KEYS, *TOKEN_KEYS))}{got}")
        if self.app_mode and (self.channel is None or not CHANNEL_ID.fullmatch(self.channel)):
            raise ValueError("a bot token (app mode) needs channel: a channel id such as C0123456789")
        if not self.api_url.startswith(("https://", "http://")) or not self.api_url.endswith("/"):
            raise ValueError("api_url must be an http(s) URL ending in /, such as https://slack.com/api/")
        return self

    @property
    def app_mode(self) -> bool:
        return self.secret_given("token")

    def resolve_url(self) -> str:
        url = self.secret("webhook_url")
        if not url or not url.startswith(("https://", "http://")):
            raise ValueError("the webhook URL must start with https:// or http://")
        return url.strip()

    def resolve_token(self) -> str:
        token = (self.secret("token") or "").strip()
        if not token.startswith("xox"):
            raise ValueError("the bot token must be a Slack token (xoxb-...)")
        return token

    def secret_problems(self) -> list[tuple[str, str]]:
        """Also a URL or token that is read but is not one, named by the key it came from (at load)."""
        problems = super().secret_problems()
        if not problems:
            keys, check = (TOKEN_KEYS, self.resolve_token) if self.app_mode else (WEBHOOK_KEYS, self.resolve_url)
            try:
                check()
            except ValueError as exc:
                problems.append((next(k for k in keys if getattr(self, k)), str(exc)))
        return problems


class SmtpConfig(OptionalPassword):
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    starttls: Literal["required", "opportunistic", "off"] = "required"
    tls: bool = False
    username: str | None = None
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
        if self.username is not None:
            self.require_secret("password")
        elif self.secret_given("password"):
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
