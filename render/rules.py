"""Lay the alert and recording rules out as Prometheus rule files through a jinja2 template.

The template uses ``[[ ]]``/``[% %]`` delimiters so Prometheus' own ``{{ }}`` alert templates pass
through untouched. Strings go out JSON-quoted, which YAML reads as double-quoted scalars.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import jinja2
from opsloop.render.alerts import AlertGroup
from opsloop.render.formats import duration
from opsloop.render.records import RecordGroup

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    block_start_string="[%",
    block_end_string="%]",
    variable_start_string="[[",
    variable_end_string="]]",
    comment_start_string="[#",
    comment_end_string="#]",
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)
_ENV.filters["duration"] = duration
_ENV.filters["quoted"] = lambda text: json.dumps(text, ensure_ascii=False)


def rule_file(groups: Sequence[AlertGroup] | Sequence[RecordGroup]) -> str:
    """One rule file holding ``groups`` (all alerting or all recording)."""
    return _ENV.get_template("rules.yml.j2").render(groups=groups) + "\n"
