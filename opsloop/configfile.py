"""Load a YAML file into a pydantic model and report every problem with its key path.

Both services use this for ``--check-config``: one line per problem, such as
``queues[2].key: expected a string``, and unknown keys are errors (models forbid extras).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

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


def exactly_one(**options: object) -> None:
    """Raise ValueError unless exactly one of the named options is set (for model validators)."""
    given = [name for name, v in options.items() if v is not None]
    if len(given) != 1:
        names = ", ".join(options)
        raise ValueError(f"set exactly one of {names}" + (f" (got {', '.join(given)})" if given else ""))


_MESSAGES = {
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "set_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "dataclass_type": "expected a mapping",
    "path_type": "expected a file path",
    "none_required": "expected no value",
    "missing": "required key is missing",
    "extra_forbidden": "unknown key",
    "union_tag_not_found": "expected a mapping with a type key",
}
"""Pydantic error types said in the project's words; the ones with limits are in ``_describe``."""


def _choices(expected: str) -> str:
    return expected.replace("'", "").replace(" or ", ", ")


def _describe(err: ErrorDetails) -> str:
    """What the key expects, without pydantic's wording ("Input should be ...", "Field required")."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    if kind == "literal_error":
        return f"expected one of {_choices(str(ctx.get('expected', '')))}, got {err['input']!r}"
    if kind == "union_tag_invalid":
        return f"unknown type {ctx.get('tag')!r} (expected one of {_choices(str(ctx.get('expected_tags', '')))})"
    if kind == "string_pattern_mismatch":
        return f"expected text matching {ctx.get('pattern')}, got {err['input']!r}"
    if kind == "string_too_short":
        least = ctx.get("min_length", 1)
        return "expected a non-empty string" if least == 1 else f"expected at least {least} characters"
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        return f"expected at least {least} {'entry' if least == 1 else 'entries'}"
    if kind in ("string_too_long", "too_long"):
        unit = "characters" if kind == "string_too_long" else "entries"
        return f"expected at most {ctx.get('max_length')} {unit}"
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(ctx.values()), "")
        return f"expected a value {bounds[kind]} {limit}"
    message = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if message.startswith("Input should be "):  # any type check without a message above
        message = "expected " + message.removeprefix("Input should be ")
    return message


def _location(err: ErrorDetails) -> tuple[int | str, ...]:
    # Union members and function validators add synthetic parts to the location; drop them.
    return tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))


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
    """One ``key.path: what is expected`` line per validation error."""
    return [f"{key_path(_location(err))}: {_describe(err)}" for err in exc.errors()]


@runtime_checkable
class _HasSecrets(Protocol):
    def secret_problems(self) -> list[tuple[str, str]]: ...


def secret_problems(node: object, loc: tuple[int | str, ...] = ()) -> list[tuple[tuple[int | str, ...], str]]:
    """Resolve every secret of a loaded config (see ``opsloop.secrets``): (key path, problem) for each
    variable that is unset and each file that cannot be read."""
    problems: list[tuple[tuple[int | str, ...], str]] = []
    if isinstance(node, BaseModel):
        if isinstance(node, _HasSecrets):
            problems += [((*loc, key), problem) for key, problem in node.secret_problems()]
        for name, info in type(node).model_fields.items():
            problems += secret_problems(getattr(node, name), (*loc, info.alias or name))
    elif isinstance(node, list | tuple):
        for i, item in enumerate(node):
            problems += secret_problems(item, (*loc, i))
    elif isinstance(node, dict):
        for key, item in node.items():
            problems += secret_problems(item, (*loc, key))
    return problems


Loc = tuple[int | str, ...]


class _Pruned:
    """The YAML data with the parts that failed validation left out, and the way back to the file.

    Each round of validation drops what failed (a bad key, or the entry around a missing key or a
    failed model check) and validates the rest again, so the checks that need a whole config (secrets,
    cross-references) still run over everything that is fine. Locations in the pruned data are mapped
    back to the file, so an entry after a dropped list entry keeps its own index.
    """

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.drops: set[Loc] = set()

    def current(self) -> Any:
        return self._without(self.data, ())

    def _without(self, node: Any, path: Loc) -> Any:
        if isinstance(node, dict):
            return {k: self._without(v, (*path, k)) for k, v in node.items() if (*path, k) not in self.drops}
        if isinstance(node, list):
            return [self._without(v, (*path, i)) for i, v in enumerate(node) if (*path, i) not in self.drops]
        return node

    def original(self, loc: Loc) -> tuple[Loc, Loc]:
        """(the location as reported, in the file's indices; the part of it that exists in the file)."""
        shown: list[int | str] = []
        real: list[int | str] = []
        node: Any = self.data
        for part in loc:
            if isinstance(node, dict) and part in node:
                node = node[part]
                real.append(part)
            elif isinstance(node, list) and isinstance(part, int):
                kept = [i for i in range(len(node)) if (*real, i) not in self.drops]
                part = kept[part] if part < len(kept) else part
                node = node[part] if part < len(node) else None
                real.append(part)
            # else: a part only the location has (a union's tag) or a missing key: the file stays here
            shown.append(part)
        return tuple(shown), tuple(real)

    def drop(self, real: Loc) -> bool:
        """Leave out ``real`` (for a missing key, ``original`` already stopped at its entry)."""
        if not real or real in self.drops:
            return False
        self.drops.add(real)
        return True

    @staticmethod
    def hides(real: Loc, drops: set[Loc]) -> bool:
        """Whether ``real`` is inside, or holds, something of ``drops``."""
        return any(real[: len(d)] == d or d[: len(real)] == real for d in drops)


_ROUNDS = 5


def _parse_path(text: str) -> Loc | None:
    """``queues[2].key`` -> ``("queues", 2, "key")`` (the inverse of ``key_path``)."""
    parts: list[int | str] = []
    for index, name in re.findall(r"\[(\d+)\]|\.?([^.\[\]]+)", text):
        parts.append(int(index) if index else name)
    return tuple(parts) if parts and key_path(tuple(parts)) == text else None


def _validate_all(
    data: dict[str, Any], model: type[M], check: Callable[[M], list[str]] | None
) -> tuple[M | None, list[str]]:
    """The config and every problem of it: validation errors, then secrets and ``check`` over the rest.

    Only the first round's validation errors are reported, plus later ones away from anything left
    out (a model check that an invalid field had hidden).
    """
    pruned = _Pruned(data)
    problems: list[str] = []

    def report(loc: Loc, message: str) -> None:
        line = f"{key_path(pruned.original(loc)[0])}: {message}"
        if line not in problems:
            problems.append(line)

    for _ in range(_ROUNDS):
        try:
            config = model.model_validate(pruned.current())
        except ValidationError as exc:
            earlier = set(pruned.drops)
            changed = False
            for err in exc.errors():
                loc = _location(err)
                if not pruned.hides(pruned.original(loc)[1], earlier):
                    report(loc, _describe(err))
                changed = pruned.drop(pruned.original(loc)[1]) or changed
            if not changed:
                return None, problems
            continue
        for loc, message in secret_problems(config):
            report(loc, message)
        for line in check(config) if check is not None else []:
            where, _, message = line.partition(": ")
            path = _parse_path(where)
            if path is None or not message:
                problems.append(line)
            elif not any(pruned.original(path)[1][: len(d)] == d for d in pruned.drops):
                report(path, message)  # a check of something left out would only repeat its problem
        return config, problems
    return None, problems


def load_model(path: str | Path, model: type[M], check: Callable[[M], list[str]] | None = None) -> M:
    """Parse YAML at ``path`` into ``model`` or raise ConfigError listing every problem.

    ``check`` adds the checks that span sections (names that must exist). Every secret is resolved
    (``opsloop.secrets``), so an unset variable or unreadable file is a problem of the load too.
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
    config, problems = _validate_all(data, model, check)
    if problems or config is None:
        raise ConfigError(path, problems or ["(top level): the configuration cannot be validated"])
    return config
