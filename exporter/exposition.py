"""Render the exporter's own metric families in the Prometheus text format or OpenMetrics.

prometheus-client's encoders build a labels dict and validate every label name for each sample,
which costs more than all of Redis' work at 10,000 queue keys. Our families are declared up front
with valid names, so this writes each line directly. The process metrics still come from
prometheus-client's encoder, appended after ours (before OpenMetrics' ``# EOF``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, repeat

from opsloop.exporter.sources.base import Column, Metric, Series


@dataclass(slots=True)
class Family:
    """One metric's series: single ones in ``series``, and ``columns`` whose label sets none of them repeat."""

    metric: Metric
    series: dict[tuple[str, ...], float] = field(default_factory=dict)
    columns: list[Column] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.series) + sum(len(c) for c in self.columns)


def _widened(family: Family, metric: Metric) -> Family:
    """``family`` under the union of both label name lists, its series padded with empty values.

    A framework queue adds a ``framework`` label to ``opsloop_queue_length``; a hand-configured queue
    has none. An empty label value is an absent label to Prometheus, and ``render`` leaves it out.
    """
    names = family.metric.labels + tuple(n for n in metric.labels if n not in family.metric.labels)
    if names == family.metric.labels:
        return family
    pad = ("",) * (len(names) - len(family.metric.labels))
    wide = Metric(family.metric.name, family.metric.kind, family.metric.help, names)
    series = {labels + pad: value for labels, value in family.series.items()}
    for column in family.columns:  # disjoint from the series: no first value to keep
        series.update((labels + pad, value) for labels, value in column.items())
    return Family(wide, series)


def _aligned(labels: tuple[str, ...], metric: Metric, family: Family) -> tuple[str, ...]:
    values = dict(zip(metric.labels, labels, strict=True))
    return tuple(values.get(name, "") for name in family.metric.labels)


def _add_sample(families: dict[str, Family], metric: Metric, labels: tuple[str, ...], value: float) -> bool:
    """Add one series; False when its label set is already there (the first value stays)."""
    family = families.get(metric.name)
    if family is None:
        family = families[metric.name] = Family(metric)
    elif metric is not family.metric and metric.labels != family.metric.labels:
        family = families[metric.name] = _widened(family, metric)
        labels = _aligned(labels, metric, family)
    if family.columns and labels:
        head, last = labels[:-1], labels[-1]
        if any(c.prefix == head and last in c for c in family.columns):
            return False
    if labels in family.series:
        return False
    family.series[labels] = value
    return True


def _add_column(families: dict[str, Family], column: Column) -> int:
    """Add a column whole when no series of it is there yet, else series by series; returns the dropped count."""
    family = families.get(column.metric.name)
    if family is None:
        families[column.metric.name] = Family(column.metric, columns=[column])
        return 0
    if column.metric.labels == family.metric.labels and not _overlaps(family, column):
        family.columns.append(column)
        return 0
    return sum(not _add_sample(families, column.metric, labels, value) for labels, value in column.items())


def _overlaps(family: Family, column: Column) -> bool:
    """Whether a label set of ``column`` may already be in ``family`` (only if it shares the prefix)."""
    same_prefix = [c for c in family.columns if c.prefix == column.prefix]
    series = [labels[-1] for labels in family.series if labels[:-1] == column.prefix]
    if not same_prefix and not series:
        return False
    if any(name in column for name in series):
        return True
    for other in same_prefix:
        # The larger column answers for the smaller one's names: one fixed queue key beside 100,000
        # pattern keys costs one lookup (and one set of the large column's names, built once).
        small, big = sorted((other, column), key=len)
        if any(name in big for name in small.names):
            return True
    return False


def _add(families: dict[str, Family], item: Series) -> int:
    if isinstance(item, Column):
        return _add_column(families, item)
    return 0 if _add_sample(families, *item) else 1


def group(samples: Iterable[Series]) -> tuple[list[Family], int]:
    """Samples and columns by metric name, in first-seen order; a repeated label set keeps its first value.

    Returns the families and the number of duplicate series dropped (overlapping patterns, say).
    """
    families: dict[str, Family] = {}
    dropped = sum(_add(families, item) for item in samples)
    return list(families.values()), dropped


def merge(family_lists: Iterable[list[Family]]) -> list[Family]:
    """One family per metric name across sources (two Redis servers both have opsloop_queue_length).

    Families are shared with concurrent scrapes, so a name seen twice gets a new merged family;
    a label set already present keeps its first value.
    """
    merged: dict[str, Family] = {}
    for families in family_lists:
        for family in families:
            first = merged.get(family.metric.name)
            if first is None:
                merged[family.metric.name] = family
                continue
            merged[family.metric.name] = Family(first.metric, dict(first.series), list(first.columns))
            for labels, value in family.series.items():
                _add_sample(merged, family.metric, labels, value)
            for column in family.columns:
                _add_column(merged, column)
    return list(merged.values())


def _escape_label(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def _escape_help(text: str, openmetrics: bool) -> str:
    text = text.replace("\\", r"\\").replace("\n", r"\n")
    return text.replace('"', r"\"") if openmetrics else text


_SPECIAL_VALUES = {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}


def format_value(value: float) -> str:
    text = repr(float(value))
    return _SPECIAL_VALUES.get(text, text)


CHUNK_LINES = 1000
"""Series per chunk: the response streams in pieces instead of holding the whole text at once."""


def render(families: Iterable[Family], openmetrics: bool = False) -> Iterator[bytes]:
    """The exposition text of ``families`` in chunks of CHUNK_LINES series (without OpenMetrics' ``# EOF``)."""
    for family in families:
        m = family.metric
        sample_name = f"{m.name}_total" if m.kind == "counter" else m.name
        family_name = m.name if openmetrics else sample_name
        out = [f"# HELP {family_name} {_escape_help(m.help, openmetrics)}\n# TYPE {family_name} {m.kind}\n"]
        # One %-format per series; names are validated metric and label names, so they hold no "%".
        line = sample_name + ("{" + ",".join(f'{n}="%s"' for n in m.labels) + "}" if m.labels else "") + " %s\n"
        for labels, value in family.series.items():
            if "" in labels:  # an absent label of a widened family (see _widened)
                pairs = ",".join(f'{n}="{_escape_label(v)}"' for n, v in zip(m.labels, labels, strict=True) if v)
                out.append(
                    f"{sample_name}{{{pairs}}} {format_value(value)}\n"
                    if pairs
                    else f"{sample_name} {format_value(value)}\n"
                )
                continue
            out.append(line % (*[_escape_label(v) for v in labels], format_value(value)))
            if len(out) >= CHUNK_LINES:
                yield "".join(out).encode()
                out = []
        if out:
            yield "".join(out).encode()
        for column in family.columns:
            yield from _render_column(sample_name, column)


def _render_column(sample_name: str, column: Column) -> Iterator[bytes]:
    """A column's lines, CHUNK_LINES at a time, joined in C from the names and the values' reprs."""
    *fixed, last = column.metric.labels
    pairs = "".join(f'{n}="{_escape_label(v)}",' for n, v in zip(fixed, column.prefix, strict=True))
    head = f'{sample_name}{{{pairs}{last}="'
    for start in range(0, len(column), CHUNK_LINES):
        names = column.names[start : start + CHUNK_LINES]
        values = column.values[start : start + CHUNK_LINES]
        joined = "\x00".join(names)
        if "\\" in joined or '"' in joined or "\n" in joined:  # rare: escape this chunk's names
            names = [_escape_label(name) for name in names]
        finite = all(map(math.isfinite, values))
        if finite and column.decimals is not None:  # one %-format for the chunk: no text object per value
            line = head.replace("%", "%%") + f'%s"}} %.{column.decimals}f\n'
            yield ((line * len(names)) % tuple(chain.from_iterable(zip(names, values, strict=True)))).encode()
            continue
        # repr is the format_value of a finite float; map and zip keep the loop in C
        texts = map(repr if finite else format_value, values)
        lines = zip(repeat(head), names, repeat('"} '), texts, repeat("\n"), strict=False)
        yield "".join(map("".join, lines)).encode()
