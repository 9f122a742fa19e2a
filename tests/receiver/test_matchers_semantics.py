"""Alertmanager matcher parsing and semantics, pinned value by value without starting amtool.

The values are Alertmanager 0.25's (``pkg/labels``: parse.go and matcher.go), written out by hand;
``test_matchers.py`` checks the same kinds of strings against amtool itself.
"""

from __future__ import annotations

import re

import pytest
from opsloop.receiver.matchers import Matcher, failures, new_matcher, parse_matcher, parse_matchers, split_matchers


@pytest.mark.parametrize(
    ("text", "name", "op", "value"),
    [
        ('a="b"', "a", "=", "b"),
        ("a=b", "a", "=", "b"),
        ('a=""', "a", "=", ""),
        ("a=", "a", "=", ""),
        ('  le:a_b  !~  "x|y"  ', "le:a_b", "!~", "x|y"),
        ('a!="b"', "a", "!=", "b"),
        ('a=~"b.*"', "a", "=~", "b.*"),
        ('a="x\\ny"', "a", "=", "x\ny"),
        ('a="b\\\\c"', "a", "=", "b\\c"),
        ('a="q\\"r"', "a", "=", 'q"r'),
        ('a="b\\zc"', "a", "=", "b\\zc"),  # an unknown escape keeps its backslash
        ("a=b\\", "a", "=", "b\\"),  # so does a trailing one
        ("a=b\\n", "a", "=", "b\n"),
        ('a="\\""', "a", "=", '"'),
    ],
)
def test_parsed_name_operator_and_value(text: str, name: str, op: str, value: str) -> None:
    matcher = parse_matcher(text)
    assert (matcher.name, matcher.op, matcher.value) == (name, op, value)


NOT_RE2 = "uses lookaround or a backreference, which Alertmanager's RE2 lacks"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a", "bad matcher format: 'a' (expected name=value, !=, =~ or !~)"),
        ("1a=b", "bad matcher format: '1a=b' (expected name=value, !=, =~ or !~)"),
        ('a="b', 'matcher value lacks its closing double quote: "b'),
        ('a=b"c', 'matcher value contains an unescaped double quote: b"c'),
        ('a="b"c"', 'matcher value contains an unescaped double quote: "b"c"'),
        ('a="b"c', 'matcher value contains an unescaped double quote: "b"c'),
        ('a="x\\,",b=c', 'matcher value contains an unescaped double quote: "x\\,",b=c'),
        ("a=~(", "invalid regular expression '(': missing ), unterminated subpattern"),
        ("a=~(?=x)", f"regular expression '(?=x)' {NOT_RE2}"),
        ("a!~(?!x)", f"regular expression '(?!x)' {NOT_RE2}"),
        ("a=~(?<=x)y", f"regular expression '(?<=x)y' {NOT_RE2}"),
        ("a=~(?<!x)y", f"regular expression '(?<!x)y' {NOT_RE2}"),
        ("a=~(?P<n>x)(?P=n)", f"regular expression '(?P<n>x)(?P=n)' {NOT_RE2}"),
        ("a=~(x)\\1", f"regular expression '(x)\\\\1' {NOT_RE2}"),
    ],
)  # fmt: skip
def test_malformed_matchers_say_why(text: str, message: str) -> None:
    # from the start (Python's own regex error may add a position after it)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        parse_matcher(text)


def test_re2_constructs_without_lookaround_are_accepted() -> None:
    for value in ("(?P<n>x)", "(?:x|y)", "a\\.b", "[=!]+"):
        assert new_matcher("a", "=~", value).value == value


def test_equality_never_reads_regex_syntax() -> None:
    equal, unequal = new_matcher("a", "=", "b.c"), new_matcher("a", "!=", "b.c")
    assert [equal.matches({"a": v}) for v in ("b.c", "bxc")] == [True, False]
    assert [unequal.matches({"a": v}) for v in ("b.c", "bxc")] == [False, True]
    assert [equal.matches({}), unequal.matches({})] == [False, True]


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('a="x"', {"a": "x"}, True),
        ('a="x"', {"a": "xx"}, False),
        ('a="x"', {"b": "x"}, False),
        ("a=", {}, True),  # a missing label reads as ""
        ("a=", {"a": "x"}, False),
        ('a!="x"', {"a": "x"}, False),
        ('a!="x"', {"a": "y"}, True),
        ('a!=""', {}, False),
        ('a=~"x|y"', {"a": "y"}, True),
        ('a=~"x|y"', {"a": "xy"}, False),  # anchored at both ends, around the whole alternation
        ('a=~"x"', {"a": "x\n"}, False),  # Go's $ does not match before a final newline
        ('a=~".*"', {}, True),
        ('a=~".+"', {}, False),
        ('a!~"x|y"', {"a": "y"}, False),
        ('a!~"x|y"', {"a": "z"}, True),
        ('a!~"x"', {"a": "xx"}, True),
        ('a!~".+"', {}, True),
    ],
)
def test_matches_like_alertmanager(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


def test_str_gives_alertmanager_notation_back() -> None:
    assert str(new_matcher("a", "=~", "x|y")) == 'a=~"x|y"'
    assert str(Matcher("a", "!=", 'b\\c"d\ne')) == 'a!="b\\\\c\\"d\\ne"'
    for text in ('a="b\\\\c\\"d\\ne"', 'a!~"x\\\\.y"', "a="):
        (matcher,) = parse_matchers(text)
        assert parse_matcher(str(matcher)) == matcher


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ('{a="b", c=~"d|e"}', ['a="b"', ' c=~"d|e"']),
        ('a="x,y",b=c', ['a="x,y"', "b=c"]),
        ('a="x\\",y",b=c', ['a="x\\",y"', "b=c"]),  # an escaped quote does not end the quoted value
        ('a="x\\\\",b=c', ['a="x\\\\"', "b=c"]),  # an escaped backslash does not escape the quote
        ('a="x,\\",y"', ['a="x,\\",y"']),
        ('a="x\\,",b=c', ['a="x\\,",b=c']),  # a quoted comma keeps the escape: the quote stays open
        ('{a="b",}', ['a="b"']),
        ("a=b,,c=d", ["a=b", "", "c=d"]),
        ("{}", []),
        ("", []),
        ("a=b, ", ["a=b"]),
        ("a=b,  \t", ["a=b"]),
    ],
)
def test_split_matchers_like_alertmanager(text: str, tokens: list[str]) -> None:
    assert split_matchers(text) == tokens


def test_parse_matchers_reads_a_braced_list_and_refuses_empty_items() -> None:
    parsed = parse_matchers('{team="a,b", env!~"dev|test.*"}')
    assert [(m.name, m.op, m.value) for m in parsed] == [("team", "=", "a,b"), ("env", "!~", "dev|test.*")]
    with pytest.raises(ValueError, match="bad matcher format: ''"):
        parse_matchers("a=b,,c=d")
    message = "expected a matcher string such as 'severity=~\"critical|page\"'"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_matchers(["a=b"])  # type: ignore[arg-type]


def test_failures_name_each_failed_matcher_with_what_it_saw() -> None:
    matchers = parse_matchers('a="x", b=~"y|z", c!=""')
    assert failures(matchers, {"a": "x", "b": "z", "c": "1"}) == []
    assert failures(matchers, {"a": "w", "b": "q"}) == [
        "a=\"x\" failed: a='w'",
        "b=~\"y|z\" failed: b='q'",
        'c!="" failed: c is missing',
    ]
