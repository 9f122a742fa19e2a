"""Sandboxed rendering: label values are data, templates cannot escape the sandbox, failures fall back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from opsloop.receiver.metrics import ReceiverMetrics
from opsloop.receiver.notify import HistoryEntry
from opsloop.receiver.notify.render import TemplateConfigError, load_template

from .conftest import MakeNotification


@pytest.fixture
def metrics() -> ReceiverMetrics:
    """A fresh app registry: each test counts template failures from zero."""
    return ReceiverMetrics()


def failures(metrics: ReceiverMetrics, notifier: str) -> float:
    sample = metrics.registry.get_sample_value("opsloop_receiver_template_failures_total", {"notifier": notifier})
    return sample or 0.0


DEFAULTS = [
    ("title", "text", "title.txt.j2"),
    ("text", "mrkdwn", "slack.md.j2"),
    ("text", "text", "email.txt.j2"),
    ("html", "html", "email.html.j2"),
]


@pytest.mark.parametrize(("part", "flavor", "default"), DEFAULTS)
def test_template_syntax_in_a_label_stays_literal(
    make_notification: MakeNotification, part: str, flavor: str, default: str
) -> None:
    n = make_notification(labels={"alertname": "Jinja", "queue": "{{ 7*7 }}{% raw %}"})
    out = load_template("test/literal", part, flavor, default=default).render(n)  # type: ignore[arg-type]
    assert "{{ 7*7 }}{% raw %}" in out
    assert "49" not in out


def test_html_is_autoescaped(make_notification: MakeNotification) -> None:
    n = make_notification(labels={"alertname": "X", "queue": "<script>alert(1)</script>"})
    out = load_template("test/html", "html", "html", default="email.html.j2").render(n)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "<script>" not in out


def test_mrkdwn_values_are_escaped_but_template_links_are_kept(make_notification: MakeNotification) -> None:
    n = make_notification(labels={"alertname": "X", "who": "<!channel> & <http://evil|click>"})
    out = load_template("test/mrkdwn", "text", "mrkdwn", default="slack.md.j2").render(n)
    assert "&lt;!channel&gt; &amp; &lt;http://evil|click&gt;" in out
    assert "<!channel>" not in out
    # The template's own link markup survives; the & inside its URL is escaped as Slack asks.
    assert "<http://127.0.0.1:9090/graph?g0.expr=up&amp;g0.tab=1|Source>" in out


def test_malicious_user_template_falls_back_and_is_counted(
    make_notification: MakeNotification, tmp_path: Path, metrics: ReceiverMetrics
) -> None:
    evil = tmp_path / "evil.j2"
    evil.write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    template = load_template(
        "slack/evil", "text", "mrkdwn", default="slack.md.j2", path=evil, failures=metrics.template_failures
    )
    out = template.render(make_notification())
    # Counted in the app's own registry, where /metrics serves it.
    assert failures(metrics, "slack/evil") == 1
    assert b'opsloop_receiver_template_failures_total{notifier="slack/evil"} 1.0' in metrics.render()
    assert out.startswith("FIRING: DLQEntriesIncreasing (status firing, since 2024-05-01 03:00:00 UTC)")
    assert "dlq = dlq:emails" in out
    assert "subclasses" not in out


def test_unknown_name_in_a_user_template_falls_back(
    make_notification: MakeNotification, tmp_path: Path, metrics: ReceiverMetrics
) -> None:
    path = tmp_path / "typo.html.j2"
    path.write_text("<p>{{ lables.queue }}</p>")
    template = load_template(
        "email/typo", "html", "html", default="email.html.j2", path=path, failures=metrics.template_failures
    )
    out = template.render(make_notification(labels={"alertname": "X", "queue": "<b>"}))
    assert failures(metrics, "email/typo") == 1
    assert out.startswith("<pre>FIRING: X")
    assert "queue = &lt;b&gt;" in out


def test_template_rendering_nothing_falls_back(make_notification: MakeNotification, metrics: ReceiverMetrics) -> None:
    template = load_template(
        "email/empty", "title", "text", default="title.txt.j2", source="{# nothing #}  ",
        failures=metrics.template_failures,
    )  # fmt: skip
    assert template.render(make_notification()) == "DLQEntriesIncreasing"
    assert failures(metrics, "email/empty") == 1


def test_a_working_user_template_sees_the_documented_context(
    make_notification: MakeNotification, tmp_path: Path, metrics: ReceiverMetrics
) -> None:
    path = tmp_path / "custom.txt.j2"
    path.write_text(
        "{{ kind_title }}|{{ status }}|{{ alertname }}|{{ labels.dlq }}|{{ annotations.summary }}|"
        "{{ starts_at|ts }}|{{ fingerprint }}|{{ truncated_alerts }}|{{ note }}|"
        "{% for h in history %}{{ h.plan }}:{{ h.stage }}:{{ h.ok }}{% endfor %}"
    )
    history = (HistoryEntry(datetime(2024, 5, 1, 3, 1, tzinfo=UTC), "requeue", 2, "dlq_requeue", False, "x"),)
    n = make_notification(kind="escalation", truncated_alerts=3, note="all stages failed", history=history)
    template = load_template(
        "email/custom", "text", "text", default="email.txt.j2", path=path, failures=metrics.template_failures
    )
    out = template.render(n)
    assert out == (
        "ESCALATION|firing|DLQEntriesIncreasing|dlq:emails|DLQ dlq:emails is growing|"
        "2024-05-01 03:00:00 UTC|f1c2d3e4|3|all stages failed|requeue:2:False"
    )
    assert failures(metrics, "email/custom") == 0


def test_sandbox_forbids_mutating_the_context(make_notification: MakeNotification, metrics: ReceiverMetrics) -> None:
    source = "{% set _ = labels.update({'alertname': 'hijacked'}) %}{{ labels.alertname }}"
    template = load_template(
        "email/mutate", "title", "text", default="title.txt.j2", source=source, failures=metrics.template_failures
    )
    assert template.render(make_notification()) == "DLQEntriesIncreasing"
    assert failures(metrics, "email/mutate") == 1


def test_templates_dir_replaces_a_builtin_by_file_name(make_notification: MakeNotification, tmp_path: Path) -> None:
    (tmp_path / "title.txt.j2").write_text("custom {{ labels.dlq }}")
    template = load_template("slack/dir", "title", "text", default="title.txt.j2", templates_dir=tmp_path)
    assert template.render(make_notification()) == "custom dlq:emails"
    # Other built-ins still come from the package.
    body = load_template("slack/dir", "text", "mrkdwn", default="slack.md.j2", templates_dir=tmp_path)
    assert "*Labels*" in body.render(make_notification())


def test_title_is_one_line(make_notification: MakeNotification) -> None:
    n = make_notification(labels={"alertname": "Multi", "instance": "a\r\nBcc: victim@example.com"})
    title = load_template("t", "title", "text", default="title.txt.j2").render(n)
    assert title == "Multi instance=a Bcc: victim@example.com"


def test_default_title_is_the_same_for_every_kind(make_notification: MakeNotification) -> None:
    template = load_template("t", "title", "text", default="title.txt.j2")
    titles = {template.render(make_notification(kind=k)) for k in ("firing", "resolved", "escalation", "recovered")}
    assert titles == {"DLQEntriesIncreasing dlq=dlq:emails"}


@pytest.mark.parametrize(
    ("kind", "glance", "sentence"),
    [
        ("firing", "CRITICAL · FIRING", "DLQEntriesIncreasing is firing (critical) since 2024-05-01 03:00:00 UTC."),
        ("resolved", "RESOLVED · was critical", "DLQEntriesIncreasing is resolved since 2024-05-01 03:20:00 UTC."),
        ("recovered", "RECOVERED · was critical", "DLQEntriesIncreasing was repaired by a recovery plan."),
        (
            "escalation",
            "CRITICAL · ESCALATION",
            "Automatic recovery of DLQEntriesIncreasing failed: a person is needed.",
        ),
        (
            "automation_paused",
            "AUTOMATION PAUSED",
            "Automation is paused; alerts are only notified until it is resumed.",
        ),
    ],
)
def test_each_kind_opens_with_its_severity_words_and_sentence(
    make_notification: MakeNotification, kind: str, glance: str, sentence: str
) -> None:
    ended = {"status": "resolved", "ends_at": "2024-05-01T03:20:00Z"} if kind == "resolved" else {}
    n = make_notification(kind=kind, **ended)
    out = load_template("t", "text", "text", default="email.txt.j2").render(n)
    assert out.splitlines()[:2] == [glance, sentence]
    html = load_template("t", "html", "html", default="email.html.j2").render(n)
    assert f">{glance}</div>" in html  # the coloured band says the same words
    slack = load_template("t", "text", "mrkdwn", default="slack.md.j2").render(n)
    assert slack.splitlines()[0].endswith(f" *{glance}*")


def test_severity_colour_and_emoji(make_notification: MakeNotification) -> None:
    html = load_template("t", "html", "html", default="email.html.j2")
    slack = load_template("t", "text", "mrkdwn", default="slack.md.j2")
    cases = {
        ("firing", "critical"): ("#d93025", "🔴"),
        ("firing", "warning"): ("#e37400", "🟠"),
        ("firing", "info"): ("#1a73e8", "🔵"),
        ("firing", "page"): ("#5f6368", "⚪"),
        ("resolved", "critical"): ("#188038", "✅"),
    }
    for (kind, severity), (color, emoji) in cases.items():
        n = make_notification(kind=kind, labels={"alertname": "A", "severity": severity})
        assert f"background: {color};" in html.render(n), (kind, severity)
        assert slack.render(n).startswith(emoji + " "), (kind, severity)


def test_runbook_and_dashboard_links_in_every_part(make_notification: MakeNotification) -> None:
    annotations = {
        "runbook_url": "https://runbooks.example.com/dlq#x",
        "dashboard": "http://grafana.example.com/d/opsloop-queues",
        "summary": "s",
    }
    n = make_notification(annotations=annotations)
    text = load_template("t", "text", "text", default="email.txt.j2").render(n)
    assert "Runbook: https://runbooks.example.com/dlq#x" in text.splitlines()
    assert "Dashboard: http://grafana.example.com/d/opsloop-queues" in text.splitlines()
    html = load_template("t", "html", "html", default="email.html.j2").render(n)
    assert '<a href="https://runbooks.example.com/dlq#x">Runbook</a>' in html
    slack = load_template("t", "text", "mrkdwn", default="slack.md.j2").render(n)
    assert (
        "<https://runbooks.example.com/dlq#x|Runbook> · <http://grafana.example.com/d/opsloop-queues|Dashboard>"
        in slack
    )


def test_only_http_links_are_linked(make_notification: MakeNotification) -> None:
    n = make_notification(annotations={"runbook_url": "javascript:alert(1)", "dashboard_url": "data:text/html,x"})
    html = load_template("t", "html", "html", default="email.html.j2").render(n)
    assert 'href="javascript' not in html
    assert '<a href="data' not in html
    slack = load_template("t", "text", "mrkdwn", default="slack.md.j2").render(n)
    assert "|Runbook>" not in slack


def test_history_and_truncation_are_shown(make_notification: MakeNotification) -> None:
    history = (
        HistoryEntry(datetime(2024, 5, 1, 3, 0, tzinfo=UTC), "requeue-dlq", 1, "dlq_requeue", True, "moved 3 items"),
        HistoryEntry(datetime(2024, 5, 1, 3, 1, tzinfo=UTC), "requeue-dlq", 2, "dlq_requeue", False, "timed out"),
    )
    template = load_template("t", "text", "text", default="email.txt.j2")
    out = template.render(make_notification(kind="escalation", history=history, truncated_alerts=7))
    assert "2024-05-01 03:00:00 UTC  requeue-dlq stage 1 dlq_requeue: ok: moved 3 items" in out
    assert "2024-05-01 03:01:00 UTC  requeue-dlq stage 2 dlq_requeue: FAILED: timed out" in out
    assert "7 more alerts of this group were truncated by Alertmanager." in out
    assert "truncated" not in template.render(make_notification())


def test_unreadable_or_broken_template_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateConfigError, match="cannot read template"):
        load_template("t", "text", "text", default="email.txt.j2", path=tmp_path / "missing.j2")
    broken = tmp_path / "broken.j2"
    broken.write_text("{% if %}")
    with pytest.raises(TemplateConfigError, match="does not compile"):
        load_template("t", "text", "text", default="email.txt.j2", path=broken)


def test_a_possible_repeat_says_so_in_every_part(make_notification: MakeNotification) -> None:
    sentence = "This may repeat a message sent just before the receiver restarted."
    for flavor, default in (("text", "email.txt.j2"), ("html", "email.html.j2"), ("mrkdwn", "slack.md.j2")):
        template = load_template("t", "text", flavor, default=default)  # type: ignore[arg-type]
        assert sentence in template.render(make_notification(maybe_repeat=True)), flavor
        assert sentence not in template.render(make_notification()), flavor
