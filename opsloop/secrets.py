"""Secrets given inline, by environment variable or by file, and never written to logs.

A config model names a secret ``x`` with three keys: ``x`` (inline, for local use), ``x_env`` (an
environment variable) or ``x_file`` (a file such as a Kubernetes or systemd credential). Every model of
both programs declares them with the same three types and derives from ``SecretsModel``::

    class SlackConfig(SecretsModel):
        webhook_url: Secret = None
        webhook_url_env: SecretEnv = None
        webhook_url_file: SecretFile = None

``SecretsModel`` checks "exactly one" (``OptionalSecret``: "at most one") while the model validates;
``opsloop.configfile.load_model`` then resolves every secret of the loaded config, so an unset
variable or an unreadable file is reported with its key path at load, together with every other
problem. The value is kept by the model (``secret("x")``), never in a field, so it is not printed by a
model's repr.

A model whose optional secret is needed only in some setups says so with ``require_secret("x")`` in its
own validator. ``OptionalPassword`` declares the optional ``password`` of a login once, for every model
that has one.

A ``x_file`` path may start with ``${CREDENTIALS_DIRECTORY}``, the directory systemd's ``LoadCredential=``
fills (a container sets the variable to its secrets mount), so one config serves both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, PrivateAttr, model_validator

from opsloop.configfile import StrictModel


class SecretError(ValueError):
    """A secret is configured but cannot be read; ``key`` is the config key that names where."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class _Inline:
    """Marks the inline key of a secret; ``required`` means one of its three keys must be set."""

    required: bool


Secret = Annotated[str | None, _Inline(required=True)]
"""The inline key of a secret that must be given (one of ``x``, ``x_env``, ``x_file``)."""
OptionalSecret = Annotated[str | None, _Inline(required=False)]
"""The inline key of a secret that may be left out (at most one of the three)."""
SecretEnv = Annotated[str | None, Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
SecretFile = Path | None


class SecretsModel(StrictModel):
    """A config model with secrets: checks their keys and keeps their values once resolved."""

    _values: dict[str, str | None] = PrivateAttr(default_factory=dict)

    @classmethod
    def secret_names(cls) -> dict[str, bool]:
        """Each secret of the model and whether it is required."""
        return {
            name: mark.required
            for name, info in cls.model_fields.items()
            for mark in info.metadata
            if isinstance(mark, _Inline)
        }

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        for name, required in self.secret_names().items():
            keys = secret_keys(name)
            given = [key for key in keys if getattr(self, key) is not None]
            if len(given) > 1 or (required and not given):
                got = f" (got {', '.join(given)})" if given else ""
                raise ValueError(f"set {'exactly' if required else 'at most'} one of {', '.join(keys)}{got}")
        return self

    def secret_given(self, name: str) -> bool:
        """Whether any of the secret's three keys is set."""
        return any(getattr(self, key) is not None for key in secret_keys(name))

    def require_secret(self, name: str) -> None:
        """For a model validator: raise ValueError unless the optional secret ``name`` is set."""
        if not self.secret_given(name):
            raise ValueError(f"set exactly one of {', '.join(secret_keys(name))}")

    def secret(self, name: str) -> str | None:
        """The secret's value (read once, then kept); None when it is optional and not set.

        Raises SecretError naming the key when the variable is unset or the file cannot be read.
        """
        if name not in self._values:
            self._values[name] = _read(name, *(getattr(self, key) for key in secret_keys(name)))
        return self._values[name]

    def secret_problems(self) -> list[tuple[str, str]]:
        """Resolve every secret of this model; (key, problem) for each that cannot be read."""
        problems = []
        for name in self.secret_names():
            try:
                self.secret(name)
            except SecretError as exc:
                problems.append((exc.key, str(exc)))
        return problems


class OptionalPassword(SecretsModel):
    """The optional ``password`` / ``password_env`` / ``password_file`` of a login (SMTP, Redis)."""

    password: OptionalSecret = None
    password_env: SecretEnv = None
    password_file: SecretFile = None


def secret_keys(name: str) -> tuple[str, str, str]:
    """The three config keys of the secret ``name``: inline, environment variable, file."""
    return name, f"{name}_env", f"{name}_file"


CREDENTIALS_DIRECTORY = "${CREDENTIALS_DIRECTORY}"


def credential_path(key: str, file: str | Path) -> Path:
    """``${CREDENTIALS_DIRECTORY}/name`` -> a path in the directory the environment names."""
    text = str(file)
    if CREDENTIALS_DIRECTORY in text:
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise SecretError(key, f"{text}: CREDENTIALS_DIRECTORY is not set (systemd sets it with LoadCredential=)")
        text = text.replace(CREDENTIALS_DIRECTORY, directory)
    return Path(text)


def _read(name: str, value: str | None, env: str | None, file: Path | None) -> str | None:
    """One secret from whichever key is set. Files lose one trailing newline."""
    if value is not None:
        return value
    if env is not None:
        if env not in os.environ:
            raise SecretError(f"{name}_env", f"environment variable {env} is not set")
        return os.environ[env]
    if file is not None:
        try:
            text = credential_path(f"{name}_file", file).read_text()
        except OSError as exc:
            raise SecretError(f"{name}_file", f"cannot read secret file {file}: {exc.strerror}") from exc
        return text[:-1] if text.endswith("\n") else text
    return None
