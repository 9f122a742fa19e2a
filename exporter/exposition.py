"""Render the exporter's own metric families in the Prometheus text format or OpenMetrics.

prometheus-client's encoders build a labels dict and validate every label name for each sample,
which costs more than all of Redis' work at 10,000 queue keys. Our families are declared up front
with valid names, so this writes each line directly. The process metrics still come from
prometheus-client's encoder, appended after ours (before OpenMetrics' ``# EOF``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from exporter.sources.base import Metric, Sample


@dataclass(slots=True)
class Family:
    metric: Metric
    series: dict[tuple[str, ...], float] = field(default_factory=dict)


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
        family.series.setdefault(labels, value)
        total += 1
    return list(families.values()), total - sum(len(f.series) for f in families.values())


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


def render(families: Iterable[Family], openmetrics: bool = False) -> Iterator[bytes]:
    """The exposition text of ``families``, one chunk per family (without OpenMetrics' ``# EOF``).

    Chunks let the response stream family by family instead of holding the whole text twice.
    """
    for family in families:
        out: list[str] = []
        m = family.metric
        sample_name = f"{m.name}_total" if m.kind == "counter" else m.name
        family_name = m.name if openmetrics else sample_name
        out.append(f"# HELP {family_name} {_escape_help(m.help, openmetrics)}\n# TYPE {family_name} {m.kind}\n")
        # One %-format per series; names are validated metric and label names, so they hold no "%".
        line = sample_name + ("{" + ",".join(f'{n}="%s"' for n in m.labels) + "}" if m.labels else "") + " %s\n"
        for labels, value in family.series.items():
            out.append(line % (*[_escape_label(v) for v in labels], format_value(value)))
        yield "".join(out).encode()
