"""Group messages: ordered by importance, within Slack's documented limits, hostile values inert.

Slack payloads are judged by ``slack_limits`` (Slack's documentation), never by the notifier's constants.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from opsloop.receiver.notify.config import EmailConfig, SlackConfig
from opsloop.receiver.notify.email import EmailNotifier
from opsloop.receiver.notify.group import GroupNotification, counts, importance, text_body
from opsloop.receiver.notify.slack import BlockMessage
from opsloop.testsupport.slack_limits import HEADER_TEXT, MAX_BLOCKS, MESSAGE_TEXT, SECTION_TEXT, payload_error

from .conftest import MakeNotification

ALERT = re.compile(r"Q\d{4}Z")


def message() -> BlockMessage:
    return BlockMessage.from_config(SlackConfig.model_validate({"name": "g", "webhook_url": "https://hooks.example/x"}))


def group_of(make_notification: MakeNotification, count: int, summary: str = "backlog", **labels: str):
    alerts = [
        make_notification(
            fingerprint=f"f{n}",
            labels={"alertname": "QueueBacklog", "queue": f"Q{n:04d}Z", **labels},
            annotations={"summary": summary, "runbook_url": "https://runbooks.example.com/q"},
        )
        for n in range(count)
    ]
    return GroupNotification("firing", sorted(alerts, key=importance), link="http://alertmanager/#/alerts")


def block_text(payload: dict[str, object]) -> int:
    return sum(len(json.dumps(b)) for b in payload["blocks"])  # type: ignore[union-attr]


@pytest.mark.parametrize(("count", "summary"), [(1, "x" * 20_000), (60, "y" * 2_500), (2_000, "short")])
def test_a_slack_group_message_holds_what_fits_and_names_the_rest(
    make_notification: MakeNotification, count: int, summary: str
) -> None:
    group = group_of(make_notification, count, summary)
    payload, fitted = message().render_group(group)
    assert 1 <= fitted <= count
    assert payload_error(payload) is None
    blocks = payload["blocks"]
    assert len(blocks) <= MAX_BLOCKS
    assert len(blocks[0]["text"]["text"]) <= HEADER_TEXT
    assert all(len(b["text"]["text"]) <= SECTION_TEXT for b in blocks[1:])
    assert sum(len(b["text"]["text"]) for b in blocks) <= MESSAGE_TEXT
    shown = Counter(ALERT.findall(json.dumps(blocks)))
    first = Counter(n.incident.labels["queue"] for n in group.alerts[:fitted])
    assert shown == first  # the first ``fitted`` alerts (most important first), each once
    if fitted < count:
        assert f"… and {count - fitted} more alerts of this group in the next message" in blocks[-1]["text"]["text"]
    # The message about exactly those alerts renders the same alerts and says how many follow.
    again, fitted_again = message().render_group(group.but(group.alerts[:fitted]))
    assert fitted_again == fitted
    assert Counter(ALERT.findall(json.dumps(again["blocks"]))) == shown


@pytest.mark.parametrize("case", ["long severity", "many severities", "long link"])
def test_label_values_and_links_of_any_length_keep_a_group_message_within_slacks_limits(
    make_notification: MakeNotification, case: str
) -> None:
    """The header's counts name every severity and the last section links all alerts: a severity of
    5,000 characters, 2,000 different ones or a 5,000-character link must not make Slack refuse the message
    (and with it the whole group)."""
    link = "https://alertmanager.example/" + "x" * 5_000 if case == "long link" else "http://alertmanager/#/alerts"
    severities = {"long severity": ["s" * 5_000] * 2_000, "many severities": [f"level-{n:04d}" for n in range(2_000)]}
    alerts = [
        make_notification(
            fingerprint=f"f{n}",
            labels={"alertname": "QueueBacklog", "queue": f"Q{n:04d}Z", "severity": severity},
            annotations={"summary": "backlog"},
        )
        for n, severity in enumerate(severities.get(case, ["warning"] * 2_000))
    ]
    group = GroupNotification("firing", alerts, link=link, maybe_repeat=True)
    payload, fitted = message().render_group(group)
    assert payload_error(payload) is None
    assert 3 < fitted < 2_000
    shown = Counter(ALERT.findall(json.dumps(payload["blocks"])))
    assert shown == Counter(n.incident.labels["queue"] for n in alerts[:fitted])
    assert payload["blocks"][1]["text"]["text"].endswith(
        "_This may repeat a message sent just before the receiver restarted._"
    )
    footer = payload["blocks"][-1]["text"]["text"]
    assert f"… and {2_000 - fitted} more alerts of this group" in footer
    assert ("All alerts" in footer) == (case != "long link")


def test_one_renderer_shows_each_group_its_own_alerts_whatever_it_rendered_before(
    make_notification: MakeNotification,
) -> None:
    """A renderer keeps the texts of the alerts it last rendered, for the message of their first ones: a
    group with other alerts at those places (a new group, or the same one after an alert changed) shows
    its own."""
    renderer = message()
    whole = group_of(make_notification, 1_000)
    payload, fitted = renderer.render_group(whole)
    part = whole.but(whole.alerts[:fitted])
    changed = make_notification(
        fingerprint="f-new", labels={"alertname": "QueueBacklog", "queue": "Q9999Z"}, annotations={"summary": "new"}
    )
    edited = whole.but([*part.alerts[:5], changed, *part.alerts[6:]])
    other = GroupNotification("firing", group_of(make_notification, 1_000).alerts[::-1], link=whole.link)
    for group in (part, edited, other, whole):
        payload, fitted = renderer.render_group(group)
        shown = Counter(ALERT.findall(json.dumps(payload["blocks"])))
        assert shown == Counter(n.incident.labels["queue"] for n in group.alerts[:fitted])
        assert fitted == message().render_group(group)[1]


def test_two_thousand_short_alerts_need_several_messages_and_lose_none(make_notification: MakeNotification) -> None:
    group = group_of(make_notification, 2_000)
    told: Counter[str] = Counter()
    rest, messages = list(group.alerts), 0
    while rest:
        part = GroupNotification(group.klass, rest, link=group.link)
        payload, fitted = message().render_group(part)
        told.update(ALERT.findall(json.dumps(payload["blocks"])))
        rest, messages = rest[fitted:], messages + 1
    assert told == Counter(f"Q{n:04d}Z" for n in range(2_000))
    assert 2 <= messages <= 10


def test_most_important_alerts_come_first_and_counts_are_by_status_and_severity(
    make_notification: MakeNotification,
) -> None:
    alerts = [
        make_notification(fingerprint="a", labels={"alertname": "A", "severity": "info"}),
        make_notification(fingerprint="b", labels={"alertname": "B"}),
        make_notification(fingerprint="c", labels={"alertname": "C", "severity": "critical"}),
        make_notification(fingerprint="d", labels={"alertname": "D", "severity": "warning"}),
        make_notification(fingerprint="e", labels={"alertname": "E", "severity": "critical"}, status="resolved"),
    ]
    ordered = sorted(alerts, key=importance)
    assert [n.incident.alertname for n in ordered] == ["C", "E", "D", "A", "B"]
    group = GroupNotification("firing", ordered)
    assert counts(group) == "4 firing, 1 resolved · 2 critical, 1 warning, 1 info, 1 no severity"
    cut = GroupNotification("firing", [make_notification(truncated_alerts=7)])
    assert counts(cut).endswith(" · Alertmanager left 7 more alerts out of its webhook")


def test_hostile_label_values_are_inert_in_every_flavour(make_notification: MakeNotification) -> None:
    hostile = "<!channel> & <http://evil|click> <script>alert(1)</script> {{ 7*7 }}"
    alerts = [
        make_notification(
            fingerprint=f"h{n}",
            labels={"alertname": "Evil", "who": hostile, "n": str(n)},
            annotations={"summary": hostile, "runbook_url": "javascript:alert(1)"},
        )
        for n in range(6)
    ]
    group = GroupNotification("firing", alerts, link="http://alertmanager/#/alerts")
    slack = json.dumps(message().render_group(group)[0]["blocks"])
    assert "<!channel>" not in slack
    assert "&lt;!channel&gt; &amp; &lt;http://evil|click&gt;" in slack
    assert "javascript:" not in slack  # only http(s) links become links
    email = EmailNotifier.from_config(
        EmailConfig.model_validate(
            {
                "name": "g",
                "smtp": {"host": "127.0.0.1", "port": 25, "starttls": "off"},
                "from": "a@example.com",
                "to": ["b@example.com"],
            }
        )
    )
    mail = email.group_message(group)
    html = mail.get_body(("html",)).get_content()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="javascript:' not in html
    text = mail.get_body(("plain",)).get_content()
    assert "{{ 7*7 }}" in text
    assert "49" not in text
    assert text == text_body(group, email._text.render) + "\n"


def test_within_a_lowered_budget_a_first_alert_too_long_in_full_is_shown_as_its_line(
    make_notification: MakeNotification,
) -> None:
    """After Slack refused longer messages, the budget can be as low as 4,000 characters: the first alert
    of a message, which always goes in, is then shown as its one line (name, labels, summary), not cut
    in the middle of its full text, which could leave out the labels that say which alert it is."""
    body = "\n".join(f"step {i}: " + "z" * 190 for i in range(200))  # 40,000 characters
    alerts = [
        make_notification(fingerprint=f"f{n}", labels={"alertname": "QueueBacklog", "queue": f"Q{n:04d}Z"},
                          annotations={"summary": "backlog", "description": body})
        for n in range(3)
    ]  # fmt: skip
    renderer = message()
    renderer.budget = 4_000
    payload, fitted = renderer.render_group(GroupNotification("firing", alerts, link="http://alertmanager/"))
    assert payload_error(payload) is None
    assert fitted == 1
    texts = [b["text"]["text"] for b in payload["blocks"]]
    assert sum(len(t) + 1 for t in texts) <= 4_000
    assert ALERT.findall(json.dumps(texts)) == ["Q0000Z"]
    assert "queue=Q0000Z — backlog" in texts[2]  # its labels and summary, in its line
    assert "… and 2 more alerts of this group in the next message" in texts[-1]
