"""A configuration validated in a short-lived child process and handed back as plain read-only records.

pydantic, PyYAML and the config models are needed only to validate a file, yet they are about a
quarter of a running exporter's memory (benchmarks/README.md). So a child process runs the very load
function that ``--check-config`` runs and answers with either its problems (every message exactly as
that load reports them) or the validated configuration; the serving process turns each model of it
into a ``Record``: its fields as read-only attributes and its secrets as resolved by the load. Records
are built generically from the models' fields, so the models stay the only description of a file.

The child is ``python -m <module> <file>`` for a module whose ``__main__`` block calls ``answer``. The
answer travels as JSON over a pipe and may hold resolved secrets, so it is never logged, and a record's
``repr`` shows its keys, not its values.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


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


def validate_in_child(module: str, path: str | Path) -> tuple[Any, list[str]]:
    """``module``'s validated configuration of ``path`` as records, or (None, every problem).

    The records carry every field of the models they come from, so code written against the models
    reads them alike; what they lack is pydantic's API (validation, ``model_*``), which serving never uses.
    """
    # A session of its own: a SIGHUP sent to this process's group (a reload) must not end the check.
    command = [sys.executable, "-m", module, str(path)]
    child = subprocess.run(command, stdout=subprocess.PIPE, check=False, start_new_session=True)
    if child.returncode != 0:
        raise SnapshotError(f"validating the configuration failed (exit status {child.returncode})")
    reply = json.loads(child.stdout)
    if "problems" in reply:
        return None, reply["problems"]
    return _decode(reply["config"]), []


def answer(load: Callable[[str], Any], problems: Callable[[Exception], list[str] | None]) -> None:
    """The child's side: load ``sys.argv[1]`` and write the configuration or its problems to stdout.

    ``problems`` turns the load's own error into its messages (None for an error it does not know,
    which then ends the child with a traceback, as a bug should).
    """
    try:
        reply = {"config": _encode(load(sys.argv[1]))}
    except Exception as exc:
        found = problems(exc)
        if found is None:
            raise
        reply = {"problems": found}
    json.dump(reply, sys.stdout)
