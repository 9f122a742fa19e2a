"""Small builders for PromQL selectors and Prometheus alert-template snippets."""

from __future__ import annotations

import re


def series(metric: str, selector: str, *matchers: str) -> str:
    """``metric{selector,matchers...}``: every opsloop query goes through the configured selector."""
    return f"{metric}{{{','.join((selector, *matchers))}}}"


def label(name: str) -> str:
    """An alert-template reference to one label of the alert."""
    return f"{{{{ $labels.{name} }}}}"


def value(function: str = "humanize") -> str:
    """An alert-template reference to the alert's value, passed through a Prometheus template function."""
    return f"{{{{ $value | {function} }}}}"


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NOT_NAMES = re.compile(r"\{[^}]*\}|\[[^\]]*\]")
_NAME = re.compile(r"(?<![\w:$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads (what must exist for it to return data)."""
    text = _NOT_NAMES.sub(" ", _LABEL_LISTS.sub(" ", _STRINGS.sub('""', expr)))
    return {name for name in _NAME.findall(text) if name not in _KEYWORDS}
