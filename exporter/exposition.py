"""Render the exporter's own metric families in the Prometheus text format or OpenMetrics.

prometheus-client's encoders build a labels dict and validate every label name for each sample,
which costs more than all of Redis' work at 10,000 queue keys. Our families are declared up front
with valid names, so this writes each line directly. The process metrics still come from
prometheus-client's encoder, appended after ours (before OpenMetrics' ``# EOF``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from opsloop.exporter.sources.base import Metric, Sample


@dataclass(slots=True)
class Family:
    metric: Metric
    series: dict[tuple[str, ...], float] = field(default_factory=dict)


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
    return Family(wide, {labels + pad: value for labels, value in family.series.items()})


def _aligned(labels: tuple[str, ...], metric: Metric, family: Family) -> tuple[str, ...]:
    values = dict(zip(metric.labels, labels, strict=True))
    return tuple(values.get(name, "") for name in family.metric.labels)


def group(samples: Iterable[Sample]) -> tuple[list[Family], int]:
    """Samples by metric name, in first-seen order; a repeated label set keeps its first value.

    Returns the families and the number of duplicate series dropped (overlapping patterns, say).
    """
    families: dict[str, Family] = {}
    total = 0
    for metric, labels, value in samples:
        family = families.get(metric.name)
        if family is None:
            family = families[metric.name] = Family(metric)
        elif metric is not family.metric and metric.labels != family.metric.labels:
            family = families[metric.name] = _widened(family, metric)
            labels = _aligned(labels, metric, family)
        family.series.setdefault(labels, value)
        total += 1
    return list(families.values()), total - sum(len(f.series) for f in families.values())


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
            wide = _widened(first, family.metric)
            other = _widened(family, wide.metric)
            series = other.series
            if other.metric.labels != wide.metric.labels:
                series = {_aligned(labels, other.metric, wide): value for labels, value in series.items()}
            merged[family.metric.name] = Family(wide.metric, {**series, **wide.series})
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
