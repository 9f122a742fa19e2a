"""Our renderer's output must parse back, exactly, with prometheus-client's own parsers."""

from __future__ import annotations

import math

from opsloop.exporter.exposition import group, merge, render
from opsloop.exporter.sources.base import Metric, Sample
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

QUEUE = Metric("opsloop_queue_length", "gauge", 'Items "queued"\nper key \\ queue.', ("redis", "queue"))
ERRORS = Metric("opsloop_source_errors", "counter", "Failed reads.", ("source",))
BUILD = Metric("opsloop_exporter_build_info", "gauge", "Always 1.", ())
NASTY = 'q"uote\\back\nline'


def samples() -> list[Sample]:
    return [
        Sample(QUEUE, ("main", NASTY), 3.0),
        Sample(QUEUE, ("main", "plain"), 1e-7),
        Sample(QUEUE, ("main", "plain"), 99.0),  # duplicate label set: first value wins
        Sample(QUEUE, ("main", "huge"), 1.5e300),
        Sample(QUEUE, ("main", "inf"), math.inf),
        Sample(QUEUE, ("main", "nan"), math.nan),
        Sample(ERRORS, ("redis/main",), 4.0),
        Sample(BUILD, (), 1.0),
    ]


def test_text_format_round_trips_values_labels_and_help():
    families, dropped = group(samples())
    assert dropped == 1
    parsed = {f.name: f for f in parse_text(b"".join(render(families)).decode())}
    queue = parsed["opsloop_queue_length"]
    assert queue.documentation == 'Items "queued"\nper key \\ queue.'
    values = {s.labels["queue"]: s.value for s in queue.samples}
    assert values["plain"] == 1e-7
    assert values[NASTY] == 3.0
    assert values["huge"] == 1.5e300
    assert values["inf"] == math.inf
    assert math.isnan(values["nan"])
    assert parsed["opsloop_source_errors"].type == "counter"
    assert parsed["opsloop_source_errors"].samples[0].name == "opsloop_source_errors_total"
    assert parsed["opsloop_exporter_build_info"].samples[0].labels == {}


def test_openmetrics_names_counters_without_total_in_type_lines():
    families, _ = group(samples())
    text = b"".join(render(families, openmetrics=True)).decode() + "# EOF\n"
    assert "# TYPE opsloop_source_errors counter\n" in text
    parsed = {f.name: f for f in parse_openmetrics(text)}
    assert parsed["opsloop_source_errors"].samples[0].name == "opsloop_source_errors_total"
    assert parsed["opsloop_source_errors"].samples[0].value == 4.0
    assert {s.labels["queue"] for s in parsed["opsloop_queue_length"].samples} >= {NASTY, "plain"}


def test_a_label_only_some_series_have_is_left_out_where_they_lack_it():
    framework = Metric("opsloop_queue_length", "gauge", "Items.", ("redis", "queue", "framework"))
    plain, _ = group([Sample(QUEUE, ("main", "a"), 1.0), Sample(framework, ("main", "b", "rq"), 2.0)])
    other, _ = group([Sample(framework, ("other", "c", "celery"), 3.0), Sample(QUEUE, ("other", "d"), 4.0)])
    families = merge([plain, other])
    (queue,) = parse_text(b"".join(render(families)).decode())
    assert {(tuple(sorted(s.labels.items())), s.value) for s in queue.samples} == {
        ((("queue", "a"), ("redis", "main")), 1.0),
        ((("framework", "rq"), ("queue", "b"), ("redis", "main")), 2.0),
        ((("framework", "celery"), ("queue", "c"), ("redis", "other")), 3.0),
        ((("queue", "d"), ("redis", "other")), 4.0),
    }
