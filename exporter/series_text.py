"""The text of series lines, the same in the Prometheus text format and OpenMetrics.

Shared by the exposition, which renders at the end of a scrape, and the queue reader, which renders a
column's lines batch by batch while Redis is still working on the next ones.
"""

from __future__ import annotations

import math
from array import array
from itertools import repeat

from opsloop.metric_contract import Metric


def escape_label(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


_SPECIAL_VALUES = {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}


def format_value(value: float) -> str:
    text = repr(float(value))
    return _SPECIAL_VALUES.get(text, text)


def sample_name_of(metric: Metric) -> str:
    """The name a metric's samples carry, the same in both formats (a counter's ends in ``_total``)."""
    return f"{metric.name}_total" if metric.kind == "counter" else metric.name


def column_lines(
    metric: Metric, prefix: tuple[str, ...], names: list[str], values: array[float], decimals: int | None
) -> bytes:
    """The lines of a run of a column's series, joined in C from the names and the values' texts."""
    *fixed, last = metric.labels
    pairs = "".join(f'{n}="{escape_label(v)}",' for n, v in zip(fixed, prefix, strict=True))
    head = f'{sample_name_of(metric)}{{{pairs}{last}="'
    joined = "\x00".join(names)
    if "\\" in joined or '"' in joined or "\n" in joined:  # rare: escape these names
        names = [escape_label(name) for name in names]
    # repr is the format_value of a finite float; map and zip keep the loop in C
    if not all(map(math.isfinite, values)):
        texts = map(format_value, values)
    elif decimals is None:
        texts = map(repr, values)
    else:
        texts = map(format, values, repeat(f".{decimals}f"))
    lines = zip(repeat(head), names, repeat('"} '), texts, repeat("\n"), strict=False)
    return "".join(map("".join, lines)).encode()
