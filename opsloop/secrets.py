"""Secrets read from an environment variable or a file, never from logs.

Config sections name a secret three ways: ``x`` (inline, for local use), ``x_env`` (an environment
variable) or ``x_file`` (a file such as a Kubernetes or systemd credential). Exactly one may be set.
A file path may start with ``${CREDENTIALS_DIRECTORY}``, the directory systemd's ``LoadCredential=``
fills (a container sets the variable to its secrets mount), so one config serves both.
"""

from __future__ import annotations

import os
from pathlib import Path


class SecretError(ValueError):
    """A secret is configured but cannot be read; the message names where it was looked for."""


CREDENTIALS_DIRECTORY = "${CREDENTIALS_DIRECTORY}"


def credential_path(file: str | Path) -> Path:
    """``${CREDENTIALS_DIRECTORY}/name`` -> a path in the directory the environment names."""
    text = str(file)
    if CREDENTIALS_DIRECTORY in text:
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise SecretError(f"{text}: CREDENTIALS_DIRECTORY is not set (systemd sets it with LoadCredential=)")
        text = text.replace(CREDENTIALS_DIRECTORY, directory)
    return Path(text)


def read_secret(*, value: str | None = None, env: str | None = None, file: str | Path | None = None) -> str | None:
    """Resolve one secret; ``None`` when none of the three is set. Files lose one trailing newline."""
    given = [name for name, v in (("value", value), ("env", env), ("file", file)) if v is not None]
    if len(given) > 1:
        raise SecretError(f"set only one of the inline value, _env and _file (got {', '.join(given)})")
    if value is not None:
        return value
    if env is not None:
        if env not in os.environ:
            raise SecretError(f"environment variable {env} is not set")
        return os.environ[env]
    if file is not None:
        try:
            text = credential_path(file).read_text()
        except OSError as exc:
            raise SecretError(f"cannot read secret file {file}: {exc.strerror}") from exc
        return text[:-1] if text.endswith("\n") else text
    return None


def exactly_one(**options: object) -> None:
    """Raise ValueError unless exactly one of the named options is set (for model validators)."""
    given = [name for name, v in options.items() if v is not None]
    if len(given) != 1:
        names = ", ".join(options)
        raise ValueError(f"set exactly one of {names}" + (f" (got {', '.join(given)})" if given else ""))
