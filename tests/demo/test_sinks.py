"""The local Slack and SMTP sinks behave like the real services in the ways the receiver relies on."""

from __future__ import annotations

import json
import smtplib
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage
from typing import Any

import pytest
from opsloop.testsupport.sinks import SlackMessage, SlackSink, SmtpSink
from opsloop.testsupport.slack_limits import payload_error


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def header(text: str, kind: str = "plain_text") -> dict[str, Any]:
    return {"type": "header", "text": {"type": kind, "text": text}}


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"text": "hello"}, None),
        ({"text": "fallback", "blocks": [section("x" * 3000)]}, None),
        ({"blocks": [header("h" * 150), {"type": "divider"}]}, None),
        ({"blocks": [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}]}]}, None),
        ([], "invalid_payload"),
        ({}, "invalid_payload"),
        ({"text": ""}, "invalid_payload"),
        ({"text": 5}, "invalid_payload"),
        ({"blocks": []}, "invalid_blocks"),
        ({"blocks": [section("x")] * 51}, "invalid_blocks"),
        ({"blocks": [section("x" * 3001)]}, "invalid_blocks"),
        ({"blocks": [section("")]}, "invalid_blocks"),
        ({"blocks": [header("h" * 151)]}, "invalid_blocks"),
        ({"blocks": [header("h", kind="mrkdwn")]}, "invalid_blocks"),
        ({"blocks": [{"type": "context", "elements": []}]}, "invalid_blocks"),
        ({"blocks": [{"type": "carousel"}]}, "invalid_blocks"),
        ({"blocks": ["section"]}, "invalid_blocks"),
    ],
)
def test_payload_validation_matches_slack(payload: object, error: str | None) -> None:
    assert payload_error(payload) == error


def post(url: str, body: bytes) -> tuple[int, str, str | None]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read().decode(), resp.headers.get("Retry-After")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers.get("Retry-After")


def test_slack_sink_in_a_thread_answers_like_slack() -> None:
    seen: list[SlackMessage] = []
    with SlackSink(on_message=seen.append) as sink:
        message = json.dumps({"text": "hi"}).encode()
        assert post(sink.url(), message) == (200, "ok", None)
        assert post(sink.url(), message) == (429, "rate_limited", "1")  # second within the same second
        assert post(sink.url("/services/other"), message) == (200, "ok", None)  # each webhook has its own limit
        assert post(sink.url(), b"{not json")[:2] == (400, "invalid_payload")
        assert post(sink.url(), json.dumps({"blocks": []}).encode())[:2] == (400, "invalid_blocks")
        assert post(sink.url("/nowhere"), message)[:2] == (404, "no_service")
        sink.fail_next(1, status=500)
        sink.fail_next(1, status=429, retry_after=7)
        assert post(sink.url(), message)[:2] == (500, "error")
        assert post(sink.url(), message) == (429, "rate_limited", "7")
        assert sink.inbox.wait_for(2, seconds=1) == seen
        assert sink.responses == [200, 429, 200, 400, 400, 404, 500, 429]
    assert [(m.path, m.payload) for m in seen] == [
        ("/services/T0000/B0000/opsloop", {"text": "hi"}),
        ("/services/other", {"text": "hi"}),
    ]


async def test_slack_sink_on_the_callers_loop_and_wait_timeout() -> None:
    async with SlackSink() as sink:
        with pytest.raises(TimeoutError, match=r"0 of 1 messages arrived within 0\.1s"):
            await sink.inbox.wait_for_async(1, seconds=0.1)


def mail(subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = subject, "a@example.com", "b@example.com"
    msg.set_content("body")
    return msg


def test_smtp_sink_requires_starttls_and_auth_and_is_verifiable_with_its_ca_file() -> None:
    received: list[EmailMessage] = []
    with SmtpSink(starttls=True, credentials=("u", "p"), on_message=received.append) as sink:
        assert sink.ca_file is not None
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                client.send_message(mail("clear text"))
            assert refused.value.smtp_code == 530  # "Must issue a STARTTLS command first"
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
            client.starttls(context=ssl.create_default_context(cafile=str(sink.ca_file)))
            client.login("u", "p")
            client.send_message(mail("over tls"))
        [message] = sink.inbox.wait_for(1, seconds=5)
        ca_dir = sink.ca_file.parent
    assert message["Subject"] == "over tls"
    assert message.get_content().strip() == "body"
    assert received == [message]
    assert not ca_dir.exists()  # the certificate and key are removed on stop


def test_smtp_sink_programmed_failures() -> None:
    with SmtpSink() as sink:
        sink.fail_next(1, "452 4.3.1 Insufficient storage")
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
            with pytest.raises(smtplib.SMTPDataError) as failed:
                client.send_message(mail("first"))
            assert failed.value.smtp_code == 452
            client.send_message(mail("second"))
        assert [m["Subject"] for m in sink.inbox.wait_for(1, seconds=5)] == ["second"]


def test_smtp_sink_refuses_chosen_recipients_and_accepts_the_others() -> None:
    with SmtpSink() as sink:
        sink.refuse_recipient("Gone@example.com", "550 5.1.1 No such user")
        sink.refuse_recipient("busy@example.com", "450 4.2.1 Mailbox busy")
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
            refused = client.sendmail(
                "a@example.com", ["b@example.com", "gone@example.com", "busy@example.com"], mail("partly").as_bytes()
            )
            assert refused == {
                "gone@example.com": (550, b"5.1.1 No such user"),
                "busy@example.com": (450, b"4.2.1 Mailbox busy"),
            }
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail("a@example.com", ["gone@example.com"], mail("nobody").as_bytes())
        [message] = sink.inbox.wait_for(1, seconds=5)
    assert message["Subject"] == "partly"
