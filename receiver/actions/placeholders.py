"""Restricted ``{name}`` substitution for action templates.

Label values are data, never template source. A template may only name a value (``{dlq}``):
attribute access, indexing, positional fields, conversions and format specs are rejected when the
config loads. Values are inserted once and never parsed again, so a value such as ``{0.__class__}`` or
``$(rm -rf /)`` stays literal text. ``{{`` and ``}}`` stand for literal braces.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from typing import Annotated

from pydantic import AfterValidator

_FORMATTER = string.Formatter()


class TemplateError(ValueError):
    """A template that cannot be used: malformed in config, or naming a value that is not there."""


class MissingValue(TemplateError):
    """A template names a value the alert did not provide; the action fails without acting."""

    def __init__(self, name: str, values: Mapping[str, str]) -> None:
        known = ", ".join(sorted(values)) or "none"
        super().__init__(f"no value for {{{name}}} (known: {known})")


def _parse(template: str) -> list[tuple[str, str | None]]:
    """Split into (literal text, placeholder name or None) pairs, rejecting every non-plain field."""
    try:
        parts = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise TemplateError(f"{template!r}: {exc}; write {{{{ or }}}} for a literal brace") from exc
    pieces: list[tuple[str, str | None]] = []
    for literal, field, spec, conversion in parts:
        if field is not None and (not field.isidentifier() or spec or conversion):
            raise TemplateError(
                f"{template!r}: placeholder {{{field}}} must be a plain name such as {{dlq}} "
                "(no indexing, attributes, conversions or format specs)"
            )
        pieces.append((literal, field))
    return pieces


def placeholder_names(template: str) -> set[str]:
    """Every name a template uses."""
    return {name for _, name in _parse(template) if name is not None}


def check_template(template: str) -> str:
    """Pydantic validator: fail config loading on a malformed template."""
    _parse(template)
    return template


Template = Annotated[str, AfterValidator(check_template)]
"""A config string with ``{name}`` placeholders, checked when the config loads."""


def value_of(values: Mapping[str, str], name: str) -> str:
    """The value for ``name`` or MissingValue, so actions fail before touching anything."""
    try:
        return values[name]
    except KeyError:
        raise MissingValue(name, values) from None


def fill(template: str, values: Mapping[str, str], quote: Callable[[str], str] = str) -> str:
    """Substitute each placeholder with its value passed through ``quote`` (URL or glob escaping)."""
    out: list[str] = []
    for literal, name in _parse(template):
        out.append(literal)
        if name is not None:
            out.append(quote(value_of(values, name)))
    return "".join(out)
