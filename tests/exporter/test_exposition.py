"""Our renderer's output must parse back, exactly, with prometheus-client's own parsers."""

from __future__ import annotations

import math
from array import array

from opsloop.exporter.exposition import group, merge, render
from opsloop.exporter.sources.base import Column, Metric, Sample
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


def column(prefix: tuple[str, ...], values: dict[str, float], metric: Metric = QUEUE) -> Column:
    return Column(metric, prefix, list(values), array("d", values.values()))


def rendered(families: list) -> dict[tuple[tuple[str, str], ...], float]:
    (queue,) = parse_text(b"".join(render(families)).decode())
    return {tuple(sorted(s.labels.items())): s.value for s in queue.samples}


def test_a_column_renders_escaped_names_and_special_values_like_single_samples():
    values = {NASTY: 3.0, "plain": 1e-7, "huge": 1.5e300, "inf": math.inf, "nan": math.nan, "zero": 0.0}
    by_column, dropped = group([column(("main",), values)])
    by_sample, _ = group([Sample(QUEUE, ("main", name), value) for name, value in values.items()])
    assert dropped == 0
    assert sorted(b"".join(render(by_column)).splitlines()) == sorted(b"".join(render(by_sample)).splitlines())
    parsed = rendered(by_column)
    assert parsed[(("queue", NASTY), ("redis", "main"))] == 3.0
    assert math.isnan(parsed[(("queue", "nan"), ("redis", "main"))])
    (openmetrics,) = parse_openmetrics(b"".join(render(by_column, openmetrics=True)).decode() + "# EOF\n")
    assert {s.labels["queue"]: s.value for s in openmetrics.samples}["huge"] == 1.5e300


def test_overlapping_columns_and_samples_keep_the_first_value_of_each_label_set():
    first = column(("main",), {"a": 1.0, "b": 2.0})
    overlapping = column(("main",), {"b": 20.0, "c": 30.0})
    other_redis = column(("other",), {"a": 100.0})
    families, dropped = group([first, Sample(QUEUE, ("main", "a"), 9.0), overlapping, other_redis])
    assert dropped == 2  # the sample for a, and b of the second column
    assert rendered(families) == {
        (("queue", "a"), ("redis", "main")): 1.0,
        (("queue", "b"), ("redis", "main")): 2.0,
        (("queue", "c"), ("redis", "main")): 30.0,
        (("queue", "a"), ("redis", "other")): 100.0,
    }


def test_merged_sources_keep_columns_and_widen_them_beside_framework_queues():
    framework = Metric("opsloop_queue_length", "gauge", "Items.", ("redis", "queue", "framework"))
    plain, _ = group([column(("main",), {"a": 1.0, "b": 2.0})])
    other, _ = group([column(("other",), {"a": 3.0})])
    frameworks, _ = group([Sample(framework, ("main", "b", "rq"), 5.0), Sample(framework, ("main", "a", ""), 7.0)])
    assert rendered(merge([plain, other])) == {
        (("queue", "a"), ("redis", "main")): 1.0,
        (("queue", "b"), ("redis", "main")): 2.0,
        (("queue", "a"), ("redis", "other")): 3.0,
    }
    assert (len(plain[0].columns), len(plain[0])) == (1, 2)  # merging made a new family: the source's is unchanged
    assert rendered(merge([plain, other, frameworks])) == {
        (("queue", "a"), ("redis", "main")): 1.0,  # the framework's empty label is the same series: first wins
        (("queue", "b"), ("redis", "main")): 2.0,
        (("queue", "a"), ("redis", "other")): 3.0,
        (("framework", "rq"), ("queue", "b"), ("redis", "main")): 5.0,
    }


def test_a_column_with_decimals_renders_that_many_and_special_values_as_ever():
    ages = Column(QUEUE, ("main",), ["a", "b", "c"], array("d", [1.5, 1 / 3, 0.0]), decimals=6)
    special = Column(QUEUE, ("other",), ["inf", "d"], array("d", [math.inf, 2.5]), decimals=6)
    percent = Column(QUEUE, ("100%s",), ["a%d"], array("d", [1.25]), decimals=6)  # "%" is text, not a format
    families, _ = group([ages, special, percent])
    lines = b"".join(render(families)).decode().splitlines()
    assert 'opsloop_queue_length{redis="main",queue="a"} 1.500000' in lines
    assert 'opsloop_queue_length{redis="main",queue="b"} 0.333333' in lines
    assert 'opsloop_queue_length{redis="main",queue="c"} 0.000000' in lines
    assert 'opsloop_queue_length{redis="other",queue="inf"} +Inf' in lines  # as format_value renders it
    assert 'opsloop_queue_length{redis="100%s",queue="a%d"} 1.250000' in lines
    assert rendered(families)[(("queue", "d"), ("redis", "other"))] == 2.5
