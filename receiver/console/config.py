"""The ``console:`` config section: who may sign in to the web console and how long a session lasts.

Without a ``console:`` section the console accepts the admin token (``admin.token*``) and is off when
neither exists. ``users`` adds named people with password hashes (``pbkdf2_sha256$...``, made by
``python -m opsloop.receiver.console.passwords``); the plain password never appears in the config.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from opsloop.configfile import StrictModel
from opsloop.durations import Duration

NAME_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"


def _hash_format(value: str) -> str:
    parts = value.split("$")
    if len(parts) != 4 or parts[0] != "pbkdf2_sha256" or not parts[1].isdigit():
        raise ValueError("expected pbkdf2_sha256$<iterations>$<salt>$<hash> (make one with "
                         "python -m opsloop.receiver.console.passwords)")  # fmt: skip
    return value


def _base_url(value: str) -> str:
    if not value.startswith(("http://", "https://")) or any(c in value for c in ' ?#"<>'):
        raise ValueError("expected the console's base URL, such as https://opsloop.example.com")
    return value.rstrip("/")


class ConsoleUser(StrictModel):
    name: str = Field(pattern=NAME_PATTERN)
    password_hash: Annotated[str, AfterValidator(_hash_format)]


class ConsoleConfig(StrictModel):
    enabled: bool = True
    admin_token_sign_in: bool = True
    """Whether the admin token signs in too (the person then gives a name for the timeline)."""
    users: list[ConsoleUser] = []
    session_ttl: Duration = Field(12 * 3600.0, gt=0)
    max_failed_sign_ins: int = Field(5, ge=1)
    """Failed sign-ins allowed per client address within ``failed_sign_in_window``, then 429."""
    failed_sign_in_window: Duration = Field(300.0, gt=0)
    external_url: Annotated[str, AfterValidator(_base_url)] | None = None
    """Where people reach the console (``https://opsloop.example.com``); approval messages link there."""
    refresh_interval: Duration = Field(5.0, ge=1)
