from __future__ import annotations

from urllib.parse import quote

import pytest
from opsloop.receiver.actions.placeholders import MissingValue, TemplateError, check_template, fill, placeholder_names


def test_fill_substitutes_plain_names_and_keeps_escaped_braces() -> None:
    assert fill("queue:{name} {{literal}}", {"name": "emails"}) == "queue:emails {literal}"


@pytest.mark.parametrize(
    "template",
    ["{a.b}", "{a[0]}", "{}", "{0}", "{a!r}", "{a:>10}", "{a", "a}", "{a.__class__}", "{a:{b}}"],
)
def test_everything_but_a_plain_name_is_rejected(template: str) -> None:
    with pytest.raises(TemplateError):
        check_template(template)


@pytest.mark.parametrize("value", ["{0.__class__}", "{{ 7*7 }}", "$(rm -rf /)", "{name}", "%(x)s"])
def test_values_are_inserted_once_and_never_parsed(value: str) -> None:
    assert fill("<{v}>", {"v": value, "name": "not-used"}) == f"<{value}>"


def test_missing_value_names_what_is_known() -> None:
    with pytest.raises(MissingValue, match=r"no value for \{name\} \(known: dlq, team\)"):
        fill("queue:{name}", {"dlq": "dlq:x", "team": "ui"})


def test_quote_applies_to_values_only() -> None:
    assert fill("/restart/{q}?a=b", {"q": "x/y z"}, quote=lambda v: quote(v, safe="")) == "/restart/x%2Fy%20z?a=b"


def test_placeholder_names() -> None:
    assert placeholder_names("{dlq}->queue:{name}:{name} {{not}}") == {"dlq", "name"}
    assert placeholder_names("plain") == set()
