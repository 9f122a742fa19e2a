"""RE2's escapes and Perl classes, which Python reads differently: Go's ``\\d``, ``\\s``, ``\\w`` and ``\\b`` are
ASCII only, and RE2 has ``\\Q...\\E``, ``\\z``, ``\\x{...}`` and octal escapes of its own.

The expected values are written out from RE2's syntax (``\\d`` is ``[0-9]``, ``\\s`` is ``[\\t\\n\\f\\r ]``,
``\\w`` is ``[0-9A-Za-z_]``; under ``(?i)`` Go folds case in them too, so ``(?i)\\w`` holds the Kelvin sign
and the long s) and checked against Alertmanager itself: one ``amtool config routes test`` answers a whole
table, one label and one route per case.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from opsloop.receiver.matchers import new_matcher, parse_matcher

from tests.receiver.test_matchers import am_config, amtool
from tests.receiver.test_matchers_re2 import assert_alertmanager_refuses, disagreements, quoted

DIGITS, SPACES = "0123456789", "\t\n\f\r "
WORD = DIGITS + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
FOLDED = "\u212a\u017f"  # Kelvin sign and long s: case variants of k and s
PROBES = "5٣zX_é\u00c9\u212a\u017f \t\v\u00a0\u2028.-"  # ASCII and Unicode digits, letters, spaces, others


def class_cases() -> list[tuple[str, str, bool]]:
    """Each Perl class alone, in brackets, with a member, negated, with and without ``(?i)``, on each probe.

    Between <>, which keeps the edge spaces; the extra member é is matched as É under ``(?i)``.
    """
    cases = []
    for letter, members in (("d", DIGITS), ("s", SPACES), ("w", WORD)):
        for flags in ("", "(?i)"):
            positive = members + (FOLDED if flags and letter == "w" else "")
            for escape, inside in ((f"\\{letter}", positive), (f"\\{letter.upper()}", None)):
                for pattern, member, negated in (
                    (escape, "", False),
                    (f"[{escape}]", "", False),
                    (f"[{escape}é]", "éÉ" if flags else "é", False),
                    (f"[^{escape}]", "", True),
                    (f"[^{escape}é]", "éÉ" if flags else "é", True),
                ):
                    for probe in PROBES:
                        held = (probe in inside) if inside is not None else (probe not in positive)
                        expected = (held or probe in member) != negated
                        cases.append((f"{flags}<{pattern}>", f"<{probe}>", expected))
    return cases


MATCHES = [  # (pattern, label value, matches)
    # \Q...\E: literal text, folded under (?i), a repetition applies to its last letter
    ("\\Qa.b\\E", "a.b", True),
    ("\\Qa.b\\E", "axb", False),
    ("(?i)\\Qa.B\\E", "A.b", True),
    ("\\Q[(?i)]|\\E", "[(?i)]|", True),
    ("\\Q[(?i)]|\\E", "[(?I)]|", False),
    ("\\Qab\\E*", "abbb", True),
    ("\\Qab\\E*", "abab", False),
    ("x\\Q\\E*", "xxx", True),
    ("\\Qa\\\\E", "a\\", True),  # the first \E ends it
    # anchors: \A and \z (Python's \Z); $ is the end of the text unless (?m)
    ("\\Aa\\z", "a", True),
    ("a$\\n", "a\n", False),
    ("a$|b", "a", True),
    ("(?m)a$\\n", "a\n", True),
    ("(?m:a$)\\n", "a\n", True),
    ("(?m:a)$\\n", "a\n", False),
    ("(?m)a(?-m)$\\n", "a\n", False),
    ("(a(?m))$\\n", "a\n", False),
    ("\\$[$]", "$$", True),
    # \b and \B see ASCII word characters only
    ("a\\b-", "a-", True),
    ("a\\b\\.", "a.", True),
    ("é\\b-", "é-", False),
    ("a\\bé", "aé", True),
    ("a\\Bé", "aé", False),
    ("a\\Bb", "ab", True),
    ("٣\\B٣", "٣٣", True),
    # code points: \x, \x{...}, octal (a single digit after \0 or a non-zero digit is not octal)
    ("\\x41\\x{42}\\x{1F600}", "AB\U0001f600", True),
    ("\\101\\12\\01", "A\n\x01", True),
    ("\\0101", "\b1", True),
    ("\\777", "\u01ff", True),
    ("[\\x41-\\x43]+", "ABC", True),
    ("[\\x41-\\x43]+", "ABD", False),
    ("(?i)\\x{e9}", "É", True),
    # control characters and punctuation escaped
    ("\\a\\f\\t\\v\\r\\n", "\a\f\t\v\r\n", True),
    ("\\_\\ \\#\\-\\<\\~", "_ #-<~", True),
    ("[\\]\\-\\^\\\\]+", "]-^\\", True),
    ("a\\\\1", "a\\1", True),  # an escaped backslash, then 1: no backreference
    ("\\(?=x", "(=x", True),  # an escaped parenthesis opens no lookahead
    ("[(?=x)]+", "(?=x)", True),
    # in a class, - after a Perl class is a member, not a range
    ("[\\d-z]+", "5-z", True),
    ("[\\d-z]", "m", False),
    ("[^3\\D-9]", "5", True),
    ("[^3\\D-9]", "9", False),
    ("[^3\\D-9]", "-", False),
    ("[\\D^]+", "^x", True),
    ("[\\D^]", "5", False),
    ("[&&]+|[~~]+|[||]+", "~~", True),
    # {,n} is text in RE2, a repetition in Python
    ("a{,2}", "a{,2}", True),
    ("a{,2}", "aa", False),
    ("a{2}b{1,}c{1,2}d{1000}", "aabcc" + "d" * 1000, True),
    ("a{x}+", "a{x}}", True),
    ("X+", "XX", True),  # a repetition of a letter, not a nested one
    ("\\x{10FFFF}", "\U0010ffff", True),  # the last code point
    ("[]a]", "X", False),
    ("[]a]", "]", True),
    ("[\\W-]", "X", False),
    ("[\\W-]", "-", True),
    ("[X^]+", "X^", True),
    # a negated class with a negated Perl class is still one character, repeatable
    ("[^\\D]{3}", "123", True),
    ("[^\\D]{3}", "12a", False),
]


@pytest.mark.parametrize(("pattern", "value", "expected"), MATCHES + class_cases())
def test_escapes_and_classes_match_as_in_re2(pattern: str, value: str, expected: bool) -> None:
    assert new_matcher("a", "=~", pattern).matches({"a": value}) is expected


def test_the_tables_agree_with_alertmanager(tmp_path: Path) -> None:
    assert disagreements(tmp_path, MATCHES + class_cases()) == []


REFUSED = [  # (pattern, message): refused by Alertmanager as well, though Python knows some of them
    ("a\\Z", "invalid escape sequence \\Z"),
    ("\\u0041", "invalid escape sequence \\u"),
    ("\\N{DIGIT ONE}", "invalid escape sequence \\N"),
    ("\\é", "invalid escape sequence \\é"),
    ("\\e", "invalid escape sequence \\e"),
    ("[\\b]", "invalid escape sequence \\b"),
    ("[\\A]", "invalid escape sequence \\A"),
    ("[a\\z]", "invalid escape sequence \\z"),
    ("[\\Qa\\E]", "invalid escape sequence \\Q"),
    ("\\E", "invalid escape sequence \\E"),
    ("\\xg0", "invalid escape sequence \\x"),
    ("\\x4", "invalid escape sequence \\x"),
    ("\\x{}", "invalid escape sequence \\x"),
    ("\\x{110000}", "invalid escape sequence \\x{110000}"),
    ("a\\", "trailing backslash at end of expression"),
    # Python's syntax beyond RE2's
    ("a{1001}", "invalid repeat count {1001}"),
    ("a{1,1001}", "invalid repeat count {1,1001}"),
    ("a*+b", "invalid nested repetition operator *+"),
    ("a?+", "invalid nested repetition operator ?+"),
    ("a{2}+", "invalid nested repetition operator {2}+"),
    ("(?#note)a", "invalid or unsupported Perl syntax (?#"),
    ("(?>a)", "invalid or unsupported Perl syntax (?>"),
    ("(a)(?(1)b|c)", "invalid or unsupported Perl syntax (?("),
    ("(?a:x)", "invalid or unsupported Perl syntax (?a"),
    ("(?x:a)", "invalid or unsupported Perl syntax (?x"),
    ("\\Qa.b", "missing closing ): \\Q without \\E quotes the ) that Alertmanager's anchoring adds"),
]


@pytest.mark.parametrize(("pattern", "message"), REFUSED)
def test_escapes_re2_lacks_are_refused_as_alertmanager_refuses_them(tmp_path: Path, pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^invalid regular expression '.*': {re.escape(message)}$"):
        new_matcher("a", "=~", pattern)
    assert_alertmanager_refuses(tmp_path, pattern)


def test_backreferences_are_refused_but_octal_escapes_are_not() -> None:
    for pattern in ("(a)\\1", "(a)\\8", "[\\1]"):
        message = f"regular expression {pattern!r} uses lookaround or a backreference, which Alertmanager's RE2 lacks"
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            new_matcher("a", "=~", pattern)
    assert new_matcher("a", "=~", "(a)\\12").matches({"a": "a\n"})


UNICODE_CLASSES = ["\\pN", "\\p{Greek}", "\\PL", "\\P{Lu}", "[x\\p{Nd}]", "\\p{^Greek}"]


@pytest.mark.parametrize("pattern", UNICODE_CLASSES)
def test_unicode_classes_alertmanager_accepts_are_refused_by_name(tmp_path: Path, pattern: str) -> None:
    construct = pattern.strip("[x]")
    message = f"the Unicode class {construct} has no Python equivalent"
    with pytest.raises(ValueError, match=f"^invalid regular expression '.*': {re.escape(message)}$"):
        parse_matcher(f"a=~{quoted(pattern)}")
    verdict = amtool("check-config", str(am_config(tmp_path, [{"matchers": [f"a=~{quoted(pattern)}"]}])))
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
