"""The exporter's configuration, validated in a short-lived child process and served from plain records.

pydantic, PyYAML and the config models are needed only to validate the file, yet they are about a
quarter of a running exporter's memory (benchmarks/README.md). So the child runs the same
``load_config`` that ``--check-config`` runs, and answers with either its problems (every message and
key path exactly as that load reports them) or the validated configuration; the serving process turns
each model of it into a ``Record``: its fields as read-only attributes and its secrets as resolved by
the load. Records are built generically from the models' fields, so the models stay the only
description of the configuration.

The answer travels as JSON over a pipe and holds resolved secrets, so it is never logged, and a
record's ``repr`` shows its keys, not its values.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from opsloop.exporter.config import ExporterConfig


class SnapshotError(Exception):
    """The validating child process failed without an answer (its own error went to stderr)."""


class Record:
    """One validated config section: the model's fields as attributes and its resolved secrets."""

    __slots__ = ("_fields", "_secrets")

    def __init__(self, fields: dict[str, Any], secrets: dict[str, str | None]) -> None:
        object.__setattr__(self, "_fields", fields)
        object.__setattr__(self, "_secrets", secrets)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a loaded configuration is read-only: cannot set {name}")

    def __repr__(self) -> str:
        return f"Record({', '.join(self._fields)})"

    def secret(self, name: str) -> str | None:
        """The secret's value as the load resolved it; None when it is optional and not set."""
        return self._secrets[name]


def _encode(value: Any) -> Any:
    """A loaded config as JSON data, each kind of value tagged so the parent rebuilds it exactly."""
    from pydantic import BaseModel

    from opsloop.secrets import SecretsModel

    if isinstance(value, BaseModel):
        secrets = {name: value.secret(name) for name in value.secret_names()} if isinstance(value, SecretsModel) else {}
        return {
            "record": {name: _encode(getattr(value, name)) for name in type(value).model_fields},
            "secrets": secrets,
        }
    if isinstance(value, dict):
        return {"dict": {key: _encode(item) for key, item in value.items()}}
    if isinstance(value, list | tuple):
        return {"list": [_encode(item) for item in value]}
    if isinstance(value, Path):
        return {"path": str(value)}
    if value is None or isinstance(value, str | int | float):
        return value
    raise TypeError(f"no plain form for a config value of type {type(value).__name__}")


def _decode(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if "record" in value:
        return Record({name: _decode(item) for name, item in value["record"].items()}, value["secrets"])
    if "dict" in value:
        return {key: _decode(item) for key, item in value["dict"].items()}
    if "list" in value:
        return [_decode(item) for item in value["list"]]
    return Path(value["path"])


def load_validated(path: str) -> tuple[ExporterConfig | None, list[str]]:
    """The configuration as records, or (None, every problem) when it cannot be used.

    The records carry every field of the models they come from, so code written against the models
    reads them alike; what they lack is pydantic's API (validation, ``model_*``), which serving never uses.
    """
    child = subprocess.run([sys.executable, "-m", __name__, path], stdout=subprocess.PIPE, check=False)
    if child.returncode != 0:
        raise SnapshotError(f"validating the configuration failed (exit status {child.returncode})")
    answer = json.loads(child.stdout)
    if "problems" in answer:
        return None, answer["problems"]
    return cast("ExporterConfig", _decode(answer["config"])), []


def _answer(path: str) -> dict[str, Any]:
    from opsloop.exporter.config import load_config

    from opsloop.configfile import ConfigError

    try:
        return {"config": _encode(load_config(path))}
    except ConfigError as exc:
        return {"problems": exc.problems}


if __name__ == "__main__":
    json.dump(_answer(sys.argv[1]), sys.stdout)
