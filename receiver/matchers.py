"""Alertmanager label matchers: ``name="value"``, ``!=``, ``=~`` and ``!~``, parsed the way Alertmanager does.

Routes and plans accept ``matchers:`` as Alertmanager configs write them, so a rule moved between the two
behaves the same. The parser follows Alertmanager's ``pkg/labels`` (0.25): an optional ``{...}`` around a
comma-separated list, commas inside double quotes kept, OpenMetrics escapes (``\\"``, ``\\n``, ``\\\\``) in
quoted values, surrounding whitespace dropped. Semantics follow Alertmanager too: a missing label reads as
the empty string, and regular expressions are anchored at both ends (``^(?:re)$``).

Alertmanager uses Go's RE2, which has no lookaround and no backreferences; such patterns are refused here
instead of meaning something Alertmanager could never express. RE2 syntax Python reads differently is
translated (inline flags anywhere, ``$``, ``[[:alpha:]]`` classes, Go's ASCII-only ``\\d``, ``\\s``, ``\\w``
and ``\\b``, ``\\Q...\\E``, ``\\z``, ``\\x{...}`` and octal escapes) or, without an equivalent (``(?U)``,
``[[:^alpha:]]``, Unicode classes such as ``\\pN``), refused by name; escapes RE2 refuses are refused.
Under ``(?i)``, letters fold as in Go, which keeps the dotless and dotted i (U+0131, U+0130) apart from ``i``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, cast

Operator = Literal["=", "!=", "=~", "!~"]

_MATCHER = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*(.*?)\s*$", re.DOTALL)


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
    try:
        # ``\Z``, not ``$``: Python's ``$`` also matches before a final newline, Go's does not.
        return Matcher(name, op, value, re.compile(rf"^(?:{_translated(value)})\Z"))
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from None


def _not_re2(value: str) -> ValueError:
    return ValueError(
        f"regular expression {value!r} uses lookaround or a backreference, which Alertmanager's RE2 lacks"
    )


_FLAGS = re.compile(r"\(\?([imsU]*(?:-[imsU]*)?)([:)])")
_REPEAT = re.compile(r"\{(\d+)(?:,(\d*))?\}")
_LOOKAROUND = re.compile(r"\(\?(?:<?[=!]|P=)")
"""Lookahead, lookbehind and named backreferences: Python has them, RE2 (Alertmanager) does not."""
_PERL = {"d": "0-9", "s": "\\t\\n\\f\\r ", "w": "0-9A-Za-z_"}
"""Go's ``\\d``, ``\\s`` and ``\\w``: ASCII only (Python's are Unicode's), and Go's ``\\s`` lacks ``\\v``."""
_ESCAPE = re.compile(
    r"\\(?:Q(?P<quoted>.*?)\\E|(?P<octal>[1-7][0-7]{1,2}|0[0-7]{0,2})"
    r"|x(?:\{(?P<braced>[0-9A-Fa-f]+)\}|(?P<hex>[0-9A-Fa-f]{2}))|(?P<perl>[dDsSwW])"
    r"|(?P<unicode>[pP](?:\{[^}]*\}?|.)?)|(?P<anchor>[AbBz])|(?P<same>[afnrtv]|[\x00-/:-@\[-`{-\x7f])"
    r"|(?P<backreference>[1-9])|(?P<other>.?))",
    re.DOTALL,
)
"""RE2's escapes by kind, as Go's ``regexp/syntax`` reads them; ``other`` is an escape RE2 refuses."""
_ANCHORS = {"A": "\\A", "z": "\\Z", "b": "(?a:\\b)", "B": "(?a:\\B)"}
"""RE2's ``\\b`` and ``\\B`` see ASCII word characters only; its ``\\z`` is Python's ``\\Z``."""
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
    """RE2 syntax Python reads differently, rewritten: classes and escapes (see ``_class``, ``_escape``),
    ``$`` and inline flags.

    RE2's ``(?i)`` is valid anywhere and in force to the end of its group; Python accepts such global flags
    only at the very start, and Alertmanager's anchoring puts a group before them. They become Python's
    scoped ``(?i:...)``, and each alternative of the group gets its own scope, so ``a(?i)b|c`` keeps its
    meaning. Without ``(?m)``, RE2's ``$`` is the end of the text, Python's also the place before a final
    newline: it becomes ``\\Z``.
    """
    out: list[str] = []
    scopes: list[list[str]] = [[]]  # the flags in force at each open group, innermost last
    groups = [""]  # the flags each open group sets itself, as in ``(?m:...)``
    i = 0
    while i < len(value):
        char, flags = value[i], _FLAGS.match(value, i)
        folding = _in_force("i", groups, scopes)
        if char == "[":
            klass, i = _class(value, i)
            out.append(_go_case(klass) if folding else klass)
            continue
        if char == "\\":
            atom, i = _escape(value, i, in_class=False, folding=folding)
            out.append(atom)
            continue
        if _LOOKAROUND.match(value, i):
            raise _not_re2(value)
        if value.startswith("(?", i) and not flags and not value.startswith("(?P<", i):  # (?#, (?>, (?x: ...
            raise re.error(f"invalid or unsupported Perl syntax {value[i : i + 3]}")
        if char in "*+?" and value.startswith("+", i + 1):  # Python's possessive a*+
            raise re.error(f"invalid nested repetition operator {value[i : i + 2]}")
        if char == "{":
            repeat, i = _repeat(value, i)
            out.append(repeat)
            continue
        if flags:  # ``(?)`` sets no flag and ``(?-)`` is an error, in Python's ``(?:...)`` as in RE2
            if "U" in flags.group(1):
                raise re.error("the ungreedy flag U has no Python equivalent")
            if flags.group(2) == ":":
                scopes.append([])
                groups.append(flags.group(1))
                out.append(flags.group())
            else:
                scopes[-1].append(flags.group(1))
                out.append(f"(?{flags.group(1)}:")
            i = flags.end()
            continue
        if char == "(":
            scopes.append([])
            groups.append("")
        elif char == ")" and len(scopes) > 1:
            out.append(")" * len(scopes.pop()))
            groups.pop()
        elif char == "|":
            out.append(")" * len(scopes[-1]) + "|" + "".join(f"(?{f}:" for f in scopes[-1]))
            i += 1
            continue
        elif char == "$" and not _in_force("m", groups, scopes):
            char = "\\Z"
        elif folding and char in _GO_FOLDS:
            char = _go_letter(char)
        out.append(char)
        i += 1
    return "".join(out) + ")" * len(scopes[0])


def _repeat(value: str, start: int) -> tuple[str, int]:
    """The ``{`` at ``start``: a repetition as RE2 reads it (counts up to 1,000), or text, as RE2 reads
    ``{,2}`` (a repetition in Python), and where it ends."""
    found = _REPEAT.match(value, start)
    if found is None:
        return "\\{", start + 1
    if max(int(count or 0) for count in found.groups()) > 1000:
        raise re.error(f"invalid repeat count {found.group()}")
    if value.startswith("+", found.end()):
        raise re.error(f"invalid nested repetition operator {found.group()}+")
    return found.group(), found.end()


def _in_force(flag: str, groups: list[str], scopes: list[list[str]]) -> bool:
    """Whether ``flag`` is in force, given the flags of the open groups, outermost first."""
    on = False
    for flags in (f for own, set_later in zip(groups, scopes, strict=True) for f in (own, *set_later)):
        turned_on, _, turned_off = flags.partition("-")
        on = flag in turned_on or (on and flag not in turned_off)
    return on


_GO_FOLDS = {"i": "iI", "I": "iI", "\u0131": "\u0131", "\u0130": "\u0130"}
"""The letters whose case folding differs between Go and Python, each with what Go folds it to. Go folds
``i`` with ``I`` and the dotless ``\u0131`` and dotted ``\u0130`` each only with itself; Python's ``(?i)``
takes all four for variants of one letter. Every other letter folds the same in both."""
_NOT_FOLDED = "(?-i:(?![iI\u0131\u0130]))"


def _go_letter(letter: str) -> str:
    """One of the four letters of ``_GO_FOLDS``, written as the letters Go's ``(?i)`` matches for it."""
    return f"(?-i:[{_GO_FOLDS[letter]}])"


def _go_case(atom: str) -> str:
    """``atom`` (a character, an escape or a class) as Go's ``(?i)`` matches it: Python's ``(?i)`` for every
    character but the four of ``_GO_FOLDS``, and Go's verdict, case-sensitive, for those.

    Go folds a class before it negates it: ``(?i)[^i]`` refuses ``I``, so a negated class (``[^`` or the
    ``(?:(?!`` of ``_class``) takes a letter only if it takes each of the letter's folds.
    """
    exact = re.compile(f"(?-i:{atom})")
    verdict = all if atom.startswith(("[^", "(?:(?!")) else any
    go = "".join(q for q, folds in _GO_FOLDS.items() if verdict(exact.fullmatch(f) for f in folds))
    return f"(?:{_NOT_FOLDED}{atom}|(?-i:[{go}]))" if go else f"(?:{_NOT_FOLDED}{atom})"


def _escape(value: str, start: int, in_class: bool, folding: bool = False) -> tuple[str, int]:
    """The RE2 escape at ``start`` in Python's notation, and where it ends.

    Code points become ``\\U``, Perl classes Go's ASCII ranges (a class, or its members inside one),
    ``\\Q...\\E`` literal text; with ``folding`` (``(?i)`` in force, outside a class) as Go folds them.
    Escapes RE2 refuses are refused, though Python may know them (``\\Z``, ``\\u``, ``\\b`` in a class);
    Unicode classes (``\\pN``, ``\\p{Greek}``) have no Python equivalent.
    """
    found = cast(re.Match[str], _ESCAPE.match(value, start))
    kind = cast(str, found.lastgroup)
    text, end = found.group(kind), found.end()
    if kind == "backreference":
        raise _not_re2(value)
    if kind == "unicode":
        raise re.error(f"the Unicode class {found.group()} has no Python equivalent")
    if kind == "other" and not text:
        raise re.error("trailing backslash at end of expression")
    if kind == "other" and text == "Q" and not in_class:  # RE2 quotes to the end, Alertmanager's ``)$`` too
        raise re.error("missing closing ): \\Q without \\E quotes the ) that Alertmanager's anchoring adds")
    if kind == "other" or (in_class and kind in ("quoted", "anchor")):
        raise re.error(f"invalid escape sequence {value[start : start + 2]}")
    if kind == "quoted":  # letter by letter under ``(?i)``: Go's folds of the four, Python's of the others
        return "".join(_go_letter(c) if folding and c in _GO_FOLDS else re.escape(c) for c in text), end
    if kind == "anchor":
        return _ANCHORS[text], end
    if kind in ("octal", "braced", "hex"):
        code = int(text, 8 if kind == "octal" else 16)
        if code > 0x10FFFF:
            raise re.error(f"invalid escape sequence {found.group()}")
        atom = f"\\U{code:08x}"
    elif kind == "perl":
        ranges = _PERL[text.lower()]
        atom = ranges if in_class else f"[{'^' * text.isupper()}{ranges}]"
    else:  # ``same``: punctuation and control characters, which have no case
        return found.group(), end
    return (_go_case(atom) if folding else atom), end


def _class(value: str, start: int) -> tuple[str, int]:
    """The character class opening at ``start`` in Python's notation, and where it ends.

    ``[:alpha:]`` names and escapes are written out. A ``]`` first (or after ``^``) is a member, and so is
    a ``]`` after a backslash. Python has no negated class within a class, so a class holding ``\\D``,
    ``\\S`` or ``\\W`` becomes an alternation: ``[x\\D]`` is ``(?:[x]|[^0-9])``.
    """
    negated = value.startswith("^", start + 1)
    i = start + 1 + negated
    out = ["\\]"] if value.startswith("]", i) else []
    i += bool(out)
    excluded: list[str] = []  # the ranges of each \D, \S or \W
    while i < len(value) and value[i] != "]":
        if value.startswith("[:", i) and (close := value.find(":]", i + 2)) != -1:
            name = value[i + 2 : close]
            if name.startswith("^") and name[1:] in _POSIX:
                raise re.error(f"the negated class [:{name}:] has no Python equivalent")
            if name not in _POSIX:
                raise re.error(f"invalid character class [:{name}:]")
            out.append(_POSIX[name])
            i = close + 2
        elif value[i] == "\\" and value[i + 1 : i + 2] in ("D", "S", "W"):
            excluded.append(_PERL[value[i + 1].lower()])
            i += 2
            if value.startswith("-", i):  # no range starts at a class: the - is a member
                out.append("\\-")
                i += 1
        elif value[i] == "\\":
            member, i = _escape(value, i, in_class=True)
            out.append(member)
        else:  # ``[`` may one day open a nested set in Python (it warns), ``^`` may land first
            out.append("\\" + value[i] if value[i] in "[^&|~" else value[i])
            i += 1
    if i >= len(value):
        raise re.error("missing ] at the end of a character class")
    members = "".join(out)
    if not excluded:
        return f"[{'^' * negated}{members}]", i + 1
    either = "|".join([f"[{members}]"] * bool(members) + [f"[^{ranges}]" for ranges in excluded])
    return (f"(?:(?!{either})(?s:.))" if negated else f"(?:{either})"), i + 1


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
