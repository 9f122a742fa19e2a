"""Alertmanager label matchers: ``name="value"``, ``!=``, ``=~`` and ``!~``, parsed the way Alertmanager does.

Routes and plans accept ``matchers:`` as Alertmanager configs write them, so a rule moved between the two
behaves the same. The parser follows Alertmanager's ``pkg/labels`` (0.25): an optional ``{...}`` around a
comma-separated list, commas inside double quotes kept, OpenMetrics escapes (``\\"``, ``\\n``, ``\\\\``) in
quoted values, surrounding whitespace dropped. Semantics follow Alertmanager too: a missing label reads as
the empty string, and regular expressions are anchored at both ends (``^(?:re)$``).

Alertmanager uses Go's RE2, which has no lookaround and no backreferences; such patterns are refused here
instead of meaning something Alertmanager could never express. RE2 syntax Python reads differently is
translated (inline flags anywhere, ``[[:alpha:]]`` classes) or, without an equivalent (``(?U)``,
``[[:^alpha:]]``), refused by name.
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
        return Matcher(name, op, value, re.compile(rf"^(?:{_translated(value)})\Z"))
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from None


_FLAGS = re.compile(r"\(\?([imsU]*(?:-[imsU]*)?)\)")
_POSIX = {
    name: "".join(f"\\x{low:02x}-\\x{high:02x}" for low, high in ranges)
    for name, ranges in {  # RE2's ASCII classes, as Go's regexp/syntax lists them
        "alnum": ((0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)),
        "alpha": ((0x41, 0x5A), (0x61, 0x7A)),
        "ascii": ((0x00, 0x7F),),
        "blank": ((0x09, 0x09), (0x20, 0x20)),
        "cntrl": ((0x00, 0x1F), (0x7F, 0x7F)),
        "digit": ((0x30, 0x39),),
        "graph": ((0x21, 0x7E),),
        "lower": ((0x61, 0x7A),),
        "print": ((0x20, 0x7E),),
        "punct": ((0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)),
        "space": ((0x09, 0x0D), (0x20, 0x20)),
        "upper": ((0x41, 0x5A),),
        "word": ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)),
        "xdigit": ((0x30, 0x39), (0x41, 0x46), (0x61, 0x66)),
    }.items()
}
"""``[[:alpha:]]`` and the like as Python class ranges: Python reads ``[:alpha:]`` as the letters ``:alph``."""


def _translated(value: str) -> str:
    """RE2 syntax Python reads differently, rewritten: character classes (see ``_class``) and inline flags.

    RE2's ``(?i)`` is valid anywhere and in force to the end of its group; Python accepts such global flags
    only at the very start, and Alertmanager's anchoring puts a group before them. They become Python's
    scoped ``(?i:...)``, and each alternative of the group gets its own scope, so ``a(?i)b|c`` keeps its
    meaning.
    """
    out: list[str] = []
    scopes: list[list[str]] = [[]]  # the flags in force at each open group, innermost last
    i = 0
    while i < len(value):
        char, flags = value[i], _FLAGS.match(value, i)
        if char == "[":
            klass, i = _class(value, i)
            out.append(klass)
            continue
        if flags:  # ``(?)`` sets no flag and ``(?-)`` is an error, in Python's ``(?:...)`` as in RE2
            if "U" in flags.group(1):
                raise re.error("the ungreedy flag U has no Python equivalent")
            scopes[-1].append(flags.group(1))
            out.append(f"(?{flags.group(1)}:")
            i = flags.end()
            continue
        end = i + (2 if char == "\\" else 1)
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


def _class(value: str, start: int) -> tuple[str, int]:
    """The character class opening at ``start``, its ``[:alpha:]`` names written out, and where it ends.

    A ``]`` first (or after ``^``) is a member, and so is a ``]`` after a backslash.
    """
    i = start + 1 + value.startswith("^", start + 1)
    i += value.startswith("]", i)
    out = [value[start:i]]
    while i < len(value) and value[i] != "]":
        if value.startswith("[:", i) and (close := value.find(":]", i + 2)) != -1:
            name = value[i + 2 : close]
            if name.startswith("^") and name[1:] in _POSIX:
                raise re.error(f"the negated class [:{name}:] has no Python equivalent")
            if name not in _POSIX:
                raise re.error(f"invalid character class [:{name}:]")
            out.append(_POSIX[name])
            i = close + 2
        else:  # a ``[`` is a member (Python warns it may one day open a nested set)
            step = 2 if value[i] == "\\" else 1
            out.append("\\[" if value[i] == "[" else value[i : i + step])
            i += step
    if i >= len(value):
        raise re.error("missing ] at the end of a character class")
    return "".join(out) + "]", i + 1


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
