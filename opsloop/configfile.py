"""Load a YAML file into a pydantic model and report every problem with its key path.

Both services use this for ``--check-config``: one line per problem, such as
``queues[2].key: expected a string``, and unknown keys are errors (models forbid extras).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for config models: unknown keys are errors and loaded configs are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfigError(Exception):
    """A config file that cannot be used; ``problems`` holds one message per problem."""

    def __init__(self, path: str | Path, problems: list[str]) -> None:
        self.path = str(path)
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


_TYPE_MESSAGES = {
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "missing": "required key is missing",
    "extra_forbidden": "unknown key",
}


def key_path(loc: tuple[int | str, ...]) -> str:
    """``("queues", 2, "key")`` -> ``queues[2].key``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def describe_errors(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        # Union members and function validators add synthetic parts to the location; drop them.
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
        message = _TYPE_MESSAGES.get(err["type"], err["msg"])
        if message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        problems.append(f"{key_path(loc)}: {message}")
    return problems


def load_model(path: str | Path, model: type[M], check: Callable[[M], list[str]] | None = None) -> M:
    """Parse YAML at ``path`` into ``model`` or raise ConfigError listing every problem.

    ``check`` adds the checks that span sections (names that must exist, secrets that must be readable).
    """
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(path, [f"cannot read file: {exc.strerror}"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(path, [f"invalid YAML: {exc}"]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, ["(top level): expected a mapping"])
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(path, describe_errors(exc)) from exc
    problems = check(config) if check is not None else []
    if problems:
        raise ConfigError(path, problems)
    return config
