"""Load a YAML file into a pydantic model and report every problem with its key path.

Both services use this for ``--check-config``: one line per problem, such as
``queues[2].key: expected a string``, and unknown keys are errors (models forbid extras).
"""

from __future__ import annotations

import copy
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


def secret_problems(node: object, loc: tuple[int | str, ...] = ()) -> list[str]:
    """Resolve every secret of a loaded config (see ``opsloop.secrets``); one line per unreadable one."""
    problems: list[str] = []
    if isinstance(node, BaseModel):
        if isinstance(node, _HasSecrets):
            problems += [f"{key_path((*loc, key))}: {problem}" for key, problem in node.secret_problems()]
        for name, info in type(node).model_fields.items():
            problems += secret_problems(getattr(node, name), (*loc, info.alias or name))
    elif isinstance(node, list | tuple):
        for i, item in enumerate(node):
            problems += secret_problems(item, (*loc, i))
    elif isinstance(node, dict):
        for key, item in node.items():
            problems += secret_problems(item, (*loc, key))
    return problems


def _drop(data: Any, loc: tuple[int | str, ...], missing: bool) -> bool:
    """Remove the value at ``loc`` from ``data`` (its parent when the key itself is missing)."""
    if missing:
        loc = loc[:-1]
    if not loc:
        return False
    parent = data
    for part in loc[:-1]:
        if isinstance(parent, dict) and part not in parent:
            continue  # a part only the location has, such as the tag of a tagged union
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return False
    last = loc[-1]
    if isinstance(parent, dict) and last in parent:
        del parent[last]
        return True
    if isinstance(parent, list) and isinstance(last, int) and 0 <= last < len(parent):
        parent[last] = _DROPPED
        return True
    return False


_DROPPED = object()
"""Stands in for a list entry that was dropped, until every drop of a round is done (indices stay)."""


def _prune(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _prune(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_prune(v) for v in node if v is not _DROPPED]
    return node


def _validate_all(data: dict[str, Any], model: type[M]) -> tuple[M | None, list[str]]:
    """Validate, and when that fails, drop what failed and validate the rest again (a few rounds).

    So the checks that need a whole config (cross-references, secrets) still run over the parts that
    are fine and a single run reports every problem. Only the first round's errors are reported, plus
    later ones far from anything dropped (a model check that an invalid field had hidden).
    """
    problems: list[str] = []
    dropped: list[tuple[int | str, ...]] = []
    work = copy.deepcopy(data)
    for _ in range(_ROUNDS):
        try:
            return model.model_validate(work), problems
        except ValidationError as exc:
            errors = exc.errors()
        changed, earlier = False, list(dropped)
        for err in errors:
            loc = _location(err)
            problem = f"{key_path(loc)}: {_describe(err)}"
            if problem not in problems and not any(loc[: len(d)] == d or d[: len(loc)] == loc for d in earlier):
                problems.append(problem)
            if _drop(work, loc, err["type"] == "missing"):
                dropped.append(loc[:-1] if err["type"] == "missing" else loc)
                changed = True
        work = _prune(work)
        if not changed:
            break
    return None, problems


_ROUNDS = 5


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
    config, problems = _validate_all(data, model)
    if config is not None:
        problems += secret_problems(config)
        problems += check(config) if check is not None else []
    if problems:
        raise ConfigError(path, problems)
    assert config is not None
    return config
