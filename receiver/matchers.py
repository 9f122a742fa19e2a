"""Alertmanager label matchers: ``name="value"``, ``!=``, ``=~`` and ``!~``, parsed the way Alertmanager does.

Routes and plans accept ``matchers:`` as Alertmanager configs write them, so a rule moved between the two
behaves the same. The parser follows Alertmanager's ``pkg/labels`` (0.25): an optional ``{...}`` around a
comma-separated list, commas inside double quotes kept, OpenMetrics escapes (``\\"``, ``\\n``, ``\\\\``) in
quoted values, surrounding whitespace dropped. Semantics follow Alertmanager too: a missing label reads as
the empty string, and regular expressions are anchored at both ends (``^(?:re)$``).

Alertmanager uses Go's RE2, which has no lookaround and no backreferences; such patterns are refused here
instead of meaning something Alertmanager could never express.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, cast

Operator = Literal["=", "!=", "=~", "!~"]

_MATCHER = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*(.*?)\s*$", re.DOTALL)
_NOT_RE2 = re.compile(r"\(\?<?[=!]|\(\?P=|\\[1-9]")
"""Lookahead, lookbehind and backreferences: Python has them, RE2 (Alertmanager) does not."""


@dataclass(frozen=True)
class Matcher:
    """One label condition; ``str()`` gives it back in Alertmanager's own notation."""

    name: str
    op: Operator
    value: str
    _regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self._regex is None:
            return (actual == self.value) == (self.op == "=")
        return (self._regex.search(actual) is not None) == (self.op == "=~")

    def __str__(self) -> str:
        quoted = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{quoted}"'


def new_matcher(name: str, op: Operator, value: str) -> Matcher:
    """A matcher with its regular expression compiled (anchored as Alertmanager anchors it)."""
    if op in ("=", "!="):
        return Matcher(name, op, value)
    if _NOT_RE2.search(value):
        raise ValueError(
            f"regular expression {value!r} uses lookaround or a backreference, which Alertmanager's RE2 lacks"
        )
    try:
        # ``\Z``, not ``$``: Python's ``$`` also matches before a final newline, Go's does not.
        return Matcher(name, op, value, re.compile(rf"^(?:{_scoped_flags(value)})\Z"))
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from None


_FLAGS = re.compile(r"\(\?([imsU]*(?:-[imsU]*)?)\)")


def _scoped_flags(value: str) -> str:
    """RE2's inline flags ``(?i)`` (valid anywhere, in force to the end of their group) as Python's scoped
    ``(?i:...)``: Python accepts global flags only at the very start, and Alertmanager's anchoring puts a
    group before them. Each alternative of the group gets its own scope, so ``a(?i)b|c`` keeps its meaning.
    """
    out: list[str] = []
    scopes: list[list[str]] = [[]]  # the flags in force at each open group, innermost last
    i = 0
    while i < len(value):
        char, flags = value[i], _FLAGS.match(value, i)
        if char == "\\":
            end = i + 2
        elif char == "[":
            end = _class_end(value, i)
        elif flags and flags.group(1) not in ("", "-"):
            if "U" in flags.group(1):
                raise re.error("the ungreedy flag U has no Python equivalent")
            scopes[-1].append(flags.group(1))
            out.append(f"(?{flags.group(1)}:")
            i = flags.end()
            continue
        else:
            end = i + 1
            if char == "(":
                scopes.append([])
            elif char == ")" and len(scopes) > 1:
                out.append(")" * len(scopes.pop()))
            elif char == "|":
                out.append(")" * len(scopes[-1]) + "|" + "".join(f"(?{f}:" for f in scopes[-1]))
                i = end
                continue
        out.append(value[i:end])
        i = end
    return "".join(out) + ")" * len(scopes[0])


def _class_end(value: str, start: int) -> int:
    """Where the character class opening at ``start`` ends: a ``]`` first (or after ``^``) is a member,
    escapes and ``[:alpha:]`` names are skipped; an unclosed class runs to the end (compiling reports it)."""
    i = start + 1
    i += value.startswith("^", i)
    i += value.startswith("]", i)
    while i < len(value) and value[i] != "]":
        if value.startswith("[:", i) and (close := value.find(":]", i + 2)) != -1:
            i = close + 2
        else:
            i += 2 if value[i] == "\\" else 1
    return i + 1


def _unescape(raw: str, source: str) -> str:
    """Alertmanager's value unescaping: ``\\n``, ``\\"``, ``\\\\``; any other backslash stays literal."""
    quoted = raw.startswith('"')
    if quoted:
        raw = raw[1:]
    out: list[str] = []
    escaped = False
    for i, char in enumerate(raw):
        if escaped:
            escaped = False
            out.append({"n": "\n", '"': '"', "\\": "\\"}.get(char, "\\" + char))
        elif char == "\\" and i < len(raw) - 1:
            escaped = True
        elif char == '"':
            if not quoted or i < len(raw) - 1:
                raise ValueError(f"matcher value contains an unescaped double quote: {source}")
            quoted = False
        else:
            out.append(char)
    if quoted:
        raise ValueError(f"matcher value lacks its closing double quote: {source}")
    return "".join(out)


def parse_matcher(text: str) -> Matcher:
    """One matcher such as ``severity=~"critical|page"`` (quotes optional); ValueError when malformed."""
    found = _MATCHER.match(text)
    if found is None:
        raise ValueError(f"bad matcher format: {text.strip()!r} (expected name=value, !=, =~ or !~)")
    name, op, raw = found.groups()
    return new_matcher(name, cast(Operator, op), _unescape(raw, raw))


def split_matchers(text: str) -> list[str]:
    """Alertmanager's tokenizer: drop one ``{`` and ``}``, split on commas outside double quotes."""
    text = text.removeprefix("{").removesuffix("}")
    tokens: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if char == "," and not quoted:
            tokens.append("".join(current))
            current = []
            continue
        if char == '"' and not escaped:
            quoted = not quoted
        if char != ",":  # a quoted comma leaves the escape state alone, as in Alertmanager
            escaped = char == "\\" and not escaped
        current.append(char)
    if "".join(current).strip():
        tokens.append("".join(current))
    return tokens


def parse_matchers(text: str) -> tuple[Matcher, ...]:
    """A list such as ``{team="a", severity=~"critical|page"}`` (braces optional)."""
    if not isinstance(text, str):
        raise ValueError("expected a matcher string such as 'severity=~\"critical|page\"'")
    return tuple(parse_matcher(token) for token in split_matchers(text))


def failures(matchers: tuple[Matcher, ...], labels: Mapping[str, str]) -> list[str]:
    """Each matcher that ``labels`` fail, with the value it saw (empty when all fit)."""
    return [
        f"{m} failed: {m.name}" + (f"={labels[m.name]!r}" if m.name in labels else " is missing")
        for m in matchers
        if not m.matches(labels)
    ]
