from opsloop.render.promql import label, metric_names, series, value


def test_series_puts_selector_first() -> None:
    assert series("opsloop_queue_length", 'job="opsloop"') == 'opsloop_queue_length{job="opsloop"}'
    assert series("m", 'job="a"', 'status="failed"') == 'm{job="a",status="failed"}'


def test_template_snippets() -> None:
    assert label("queue") == "{{ $labels.queue }}"
    assert value() == "{{ $value | humanize }}"
    assert value("humanizePercentage") == "{{ $value | humanizePercentage }}"


def test_metric_names_skips_functions_labels_keywords_and_strings() -> None:
    expr = (
        'sum by (job, instance) (rate(opsloop_business_jobs_finished_total{job="opsloop",status="x y"}[5m]))\n'
        '/ instance:opsloop_jobs_finished:rate5m{job="opsloop"} > bool 0.03 and on (queue) up == 1e3'
    )
    assert metric_names(expr) == {
        "opsloop_business_jobs_finished_total",
        "instance:opsloop_jobs_finished:rate5m",
        "up",
    }


def test_metric_names_of_grafana_query() -> None:
    expr = 'sum by (status) (rate(opsloop_x_total{job=~"$job",instance=~"$instance"}[$__rate_interval]))'
    assert metric_names(expr) == {"opsloop_x_total"}
    assert metric_names('absent(up{job="opsloop"})') == {"up"}
