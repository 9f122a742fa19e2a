"""RE2 syntax that Python reads differently, translated: inline flags anywhere, ASCII classes by name.

Each case is written out by hand from RE2's syntax (flags are in force to the end of their group; the named
classes are the C locale's, as Python's ``string`` module lists them) and checked against Alertmanager
itself: one ``amtool config routes test`` answers a whole table, one label and one route per case.
"""

from __future__ import annotations

import re
import string
import warnings
from pathlib import Path

import pytest
from opsloop.receiver.matchers import new_matcher, parse_matcher

from tests.receiver.test_matchers import am_config, amtool

MATCHES = [  # (pattern, label value, matches)
    # an escape is two characters: an escaped parenthesis opens no group
    ("\\((?i)a", "(A", True),
    ("x\\.(?i)y", "x.Y", True),
    ("x\\.(?i)y", "xzY", False),
    # flags end with their group, span its alternatives, and reach the groups opened after them
    ("(a(?i)b)c", "aBc", True),
    ("(a(?i)b)c", "aBC", False),
    ("((?i)a|b)c", "Bc", True),
    ("((?i)a|b)c", "bC", False),
    ("(?i)a(b|c)", "AC", True),
    ("(?i)a(?-i)b", "Ab", True),
    ("(?i)a(?-i)b", "AB", False),
    ("(?i)a(?-i)b|c", "C", False),  # the flags in force at the | hold after it
    ("(?i)a(?-i)b|c", "c", True),
    ("a(?i)b|c", "C", True),
    ("a(?i)b|c", "AB", False),
    ("(?s).", "\n", True),
    (".", "\n", False),
    ("(?s)a(?-s).", "a\n", False),
    ("a(?m)$\\s^b", "a\nb", True),
    ("a$\\s^b", "a\nb", False),
    ("(?)x", "x", True),  # no flag at all
    ("x(?)y|z", "z", True),
    # in a class, flags and parentheses are members
    ("[(?i)]x", "?x", True),
    ("[(?i)]x", "?X", False),
    ("[(](?i)a", "(A", True),
    ("[)]x|(?i)y", "Y", True),
    ("[|]x(?i)y", "|xY", True),
    # a ] first, after ^ or after a backslash is a member
    ("[]a](?i)b", "]B", True),
    ("[]a](?i)b", "aB", True),
    ("[^]a](?i)b", "xB", True),
    ("[^]a](?i)b", "]B", False),
    ("[^]a](?i)b", "^B", True),
    ("[^](?i)]", "x", True),
    ("[^](?i)]", "i", False),
    ("[a\\](?i)]", ")", True),
    ("[a\\](?i)]", "I", False),
    ("[\\]](?i)a", "]A", True),
    # named classes, in a class of their own or among other members
    ("[[:alpha:]]+", "abZ", True),
    ("[[:alpha:]]+", "a1", False),
    ("[^[:digit:]x]", "y", True),
    ("[^[:digit:]x]", "5", False),
    ("[^[:digit:]x]", "x", False),
    ("[x[:digit:]]+(?i)y", "x5Y", True),
    ("[[:upper:][:digit:]]+", "A5Z", True),
    ("[[:upper:][:digit:]]+", "a", False),
    ("(?i)[[:upper:]]", "a", True),
    ("(?i)\\Qxi\\E", "x\u0131", False),  # quoted text folds letter by letter
    ("(?i)\\Qxi\\E", "XI", True),
    ("(?i)i\\z", "I", True),
    ("[[:a]", ":", True),  # no :] after it: [ is a member
    ("[[:a]", "[", True),
    ("[[:a]", "]", False),
    ("[[]", "[", True),
    ("[[]", "X", False),
    ("[:alpha:]+", "ph:", True),  # outside a class: a class of the letters :alph
    ("[:alpha:]+", "b", False),
]

LETTERS = "iI\u0131\u0130kK\u212asS\u017f"
"""Letters Go folds in groups of one to three: ``iI``, the dotless ``\u0131``, the dotted ``\u0130``, ``kK`` with
the Kelvin sign and ``sS`` with the long s (Go's ``unicode.SimpleFold`` orbits)."""
FOLDING = [  # (pattern, the letters of LETTERS it matches): Go folds a class's members, then negates it
    ("(?i)i", "iI"),
    ("(?i)I", "iI"),
    ("(?i)\u0131", "\u0131"),
    ("(?i)\u0130", "\u0130"),
    ("(?i)\\x{131}", "\u0131"),
    ("(?i)\\QI\\E", "iI"),
    ("(?i)\\bi", "iI"),  # an anchor matches no letter: it keeps its meaning
    ("(?i)\\Ai", "iI"),
    ("(?i)[\\x{69}]", "iI"),
    ("(?i)\\x69", "iI"),
    ("(?i)\\Qxi\\E|k", "kK\u212a"),
    ("(?i)k", "kK\u212a"),
    ("(?i)\u017f", "sS\u017f"),
    ("(?i)[X]", ""),  # a member that folds with none of them
    ("(?i)[^X]", LETTERS),
    ("(?i)[i]", "iI"),
    ("(?i)[^i]", "\u0131\u0130kK\u212asS\u017f"),
    ("(?i)[\u0131]", "\u0131"),
    ("(?i)[^\u0131]", "iI\u0130kK\u212asS\u017f"),
    ("(?i)[^\u0130I]", "\u0131kK\u212asS\u017f"),
    ("(?i)[a-z]", "iIkK\u212asS\u017f"),
    ("(?i)[^a-z]", "\u0131\u0130"),
    ("(?i)[[:alpha:]]", "iIkK\u212asS\u017f"),
    ("(?i)\\w", "iIkK\u212asS\u017f"),
    ("(?i)\\W", "\u0131\u0130"),
    ("(?i)[\\x{100}-\\x{17f}]", "\u0131\u0130sS\u017f"),  # the long s brings s and S
    ("(?i)[^\\x{100}-\\x{17f}]", "iIkK\u212a"),
    ("(?i)[i\\W]", "iI\u0131\u0130"),
    ("(?i)[^I\\W]", "kK\u212asS\u017f"),
    ("(?i)[j-\u0131]", "\u0131\u0130kK\u212asS\u017f"),  # the dotted one is in the range
    ("(?i)(?-i:i)|\u0131", "i\u0131"),
    ("[i\u0131]", "i\u0131"),
    ("(?i).", LETTERS),
]


def folding_cases() -> list[tuple[str, str, bool]]:
    return [(pattern, letter, letter in matched) for pattern, matched in FOLDING for letter in LETTERS]


NAMED = {  # RE2's ASCII classes: the C locale's
    "alnum": string.ascii_letters + string.digits,
    "alpha": string.ascii_letters,
    "ascii": "".join(map(chr, range(128))),
    "blank": " \t",
    "cntrl": "".join(map(chr, range(32))) + "\x7f",
    "digit": string.digits,
    "graph": string.ascii_letters + string.digits + string.punctuation,
    "lower": string.ascii_lowercase,
    "print": string.ascii_letters + string.digits + string.punctuation + " ",
    "punct": string.punctuation,
    "space": string.whitespace,
    "upper": string.ascii_uppercase,
    "word": string.ascii_letters + string.digits + "_",
    "xdigit": string.hexdigits,
}
EVERY = "".join(map(chr, range(0x81))) + "é"


def named_cases(every: str = EVERY) -> list[tuple[str, str, bool]]:
    """For each class, its members in it and the rest outside it (between <>, which keeps edge spaces)."""
    cases = []
    for name, members in NAMED.items():
        cases.append((f"<[[:{name}:]]*>", "<" + "".join(c for c in every if c in members) + ">", True))
        cases.append((f"<[^[:{name}:]]*>", "<" + "".join(c for c in every if c not in members) + ">", True))
    return cases


@pytest.mark.parametrize(("pattern", "value", "expected"), MATCHES + named_cases() + folding_cases())
def test_re2_syntax_matches_as_in_re2(pattern: str, value: str, expected: bool) -> None:
    assert new_matcher("a", "=~", pattern).matches({"a": value}) is expected


def quoted(text: str) -> str:
    """Alertmanager's quoting of a matcher value or a label on amtool's command line."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def assert_alertmanager_refuses(tmp_path: Path, pattern: str) -> None:
    """``amtool check-config`` rejects a route matching ``a`` against the pattern."""
    verdict = amtool("check-config", str(am_config(tmp_path, [{"matchers": [f"a=~{quoted(pattern)}"]}])))
    assert verdict.returncode != 0, verdict.stdout


def disagreements(tmp_path: Path, cases: list[tuple[str, str, bool]]) -> list[tuple[str, str, bool]]:
    """The cases Alertmanager decides otherwise: one ``amtool config routes test`` for the whole table."""
    routes = [{"matchers": [f"l{i}=~{quoted(p)}"], "continue": True} for i, (p, _, _) in enumerate(cases)]
    labels = [f"l{i}={quoted(v)}" for i, (_, v, _) in enumerate(cases)]
    done = amtool("config", "routes", "test", f"--config.file={am_config(tmp_path, routes)}", *labels)
    assert done.returncode == 0, done.stderr
    chosen = set(done.stdout.strip().split(","))
    return [case for i, case in enumerate(cases) if (f"r{i}" in chosen) != case[2]]


def test_the_tables_agree_with_alertmanager(tmp_path: Path) -> None:
    # amtool reads labels from its command line, where no argument holds a NUL
    assert disagreements(tmp_path, MATCHES + named_cases(EVERY.replace("\0", "")) + folding_cases()) == []


REFUSED = [  # (pattern, message): refused by Alertmanager as well
    ("(?-)", "missing flag"),
    ("(?i-)", "missing flag"),
    ("[[:alphabet:]]", "invalid character class [:alphabet:]"),
    ("[[::]]", "invalid character class [::]"),
    ("[[:alpha:]", "missing ] at the end of a character class"),
    ("a[b\\]", "missing ] at the end of a character class"),
    ("(?x)a", "invalid or unsupported Perl syntax (?x"),  # RE2 has no x flag
    ("a)", "unbalanced parenthesis"),
    ("(a))|(?i)b", "unbalanced parenthesis"),
]


@pytest.mark.parametrize(("pattern", "message"), REFUSED)
def test_invalid_re2_is_refused_as_alertmanager_refuses_it(tmp_path: Path, pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^invalid regular expression '.*': {re.escape(message)}"):
        new_matcher("a", "=~", pattern)
    assert_alertmanager_refuses(tmp_path, pattern)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("(?U)a+", "the ungreedy flag U has no Python equivalent"),
        ("a(?sU)b", "the ungreedy flag U has no Python equivalent"),
        ("[[:^alpha:]]", "the negated class [:^alpha:] has no Python equivalent"),
    ],
)
def test_re2_syntax_without_a_python_equivalent_is_refused_by_name(pattern: str, message: str) -> None:
    # Alertmanager accepts these; refusing them beats meaning something else
    with pytest.raises(ValueError, match=f"^invalid regular expression '.*': {re.escape(message)}$"):
        parse_matcher(f"a=~{quoted(pattern)}")


def test_a_bracket_in_a_class_is_a_member_without_pythons_nested_set_warning() -> None:
    # Python warns that ``[[`` may one day open a nested set, which would change what the class matches
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        matcher = new_matcher("a", "=~", "[[]x")
    assert matcher.matches({"a": "[x"})
