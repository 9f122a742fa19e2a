"""EmailNotifier against SmtpSink: multipart content, STARTTLS policy, verification, threading, errors."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from opsloop.receiver.notify import NotifiersConfig, PermanentError, TransientError, build_notifiers
from opsloop.receiver.notify.email import EmailNotifier
from opsloop.testsupport.servers import LOOPBACK, free_port
from opsloop.testsupport.sinks import SmtpSink

from .conftest import MakeNotification


def notifier_config(sink: SmtpSink, port: int | None = None, **smtp: Any) -> dict[str, Any]:
    return {
        "name": "oncall",
        "smtp": {"host": LOOPBACK, "port": port or sink.port, "timeout": "5s", **smtp},
        "from": "Opsloop <alerts@example.com>",
        "to": ["oncall@example.com", "lead@example.com"],
    }


def email_notifier(sink: SmtpSink, port: int | None = None, **smtp: Any) -> EmailNotifier:
    config = NotifiersConfig.model_validate({"email": [notifier_config(sink, port, **smtp)]})
    notifier = build_notifiers(config)["email/oncall"]
    assert isinstance(notifier, EmailNotifier)
    return notifier


def parts(message: EmailMessage) -> tuple[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None
    assert html is not None
    return text.get_content(), html.get_content()


async def test_multipart_text_and_html_with_escaped_label(
    smtp_sink: SmtpSink, make_notification: MakeNotification
) -> None:
    notifier = email_notifier(smtp_sink, starttls="off")
    labels = {"alertname": "QueueStuck", "queue": "<script>alert('x')</script>"}
    await notifier.notify(make_notification(labels=labels))
    [message] = await smtp_sink.inbox.wait_for_async(1)
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == "[FIRING] QueueStuck queue=<script>alert('x')</script>"
    assert message["From"] == "Opsloop <alerts@example.com>"
    assert message["To"] == "oncall@example.com, lead@example.com"
    assert message["Auto-Submitted"] == "auto-generated"
    text, html = parts(message)
    assert "queue = <script>alert('x')</script>" in text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "<script>" not in html


async def test_starttls_required_fails_against_a_server_without_starttls(
    smtp_sink: SmtpSink, make_notification: MakeNotification
) -> None:
    notifier = email_notifier(smtp_sink)  # starttls: required is the default
    with pytest.raises(PermanentError, match="STARTTLS"):
        await notifier.notify(make_notification())
    assert smtp_sink.messages == []


async def test_starttls_with_ca_file_and_password_file_succeeds(
    tls_smtp_sink: SmtpSink, make_notification: MakeNotification, tmp_path: Path
) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text("s3cret\n")
    notifier = email_notifier(
        tls_smtp_sink, ca_file=str(tls_smtp_sink.ca_file), username="alerts", password_file=str(secret)
    )
    await notifier.notify(make_notification())
    [message] = await tls_smtp_sink.inbox.wait_for_async(1)
    assert message["Subject"] == "[FIRING] DLQEntriesIncreasing dlq=dlq:emails"


async def test_wrong_password_is_permanent(tls_smtp_sink: SmtpSink, make_notification: MakeNotification) -> None:
    notifier = email_notifier(tls_smtp_sink, ca_file=str(tls_smtp_sink.ca_file), username="alerts", password="no")
    with pytest.raises(PermanentError, match="SMTP 535"):
        await notifier.notify(make_notification())


async def test_unverified_certificate_is_permanent(
    tls_smtp_sink: SmtpSink, make_notification: MakeNotification
) -> None:
    notifier = email_notifier(tls_smtp_sink, username="alerts", password="s3cret")  # system CAs only
    with pytest.raises(PermanentError, match="certificate"):
        await notifier.notify(make_notification())
    assert tls_smtp_sink.messages == []


async def test_resolved_message_threads_under_the_firing_one(
    smtp_sink: SmtpSink, make_notification: MakeNotification
) -> None:
    notifier = email_notifier(smtp_sink, starttls="opportunistic")
    for kind in ("firing", "escalation", "resolved"):
        await notifier.notify(make_notification(kind=kind, status="resolved" if kind == "resolved" else "firing"))
    firing, escalation, resolved = await smtp_sink.inbox.wait_for_async(3)
    root = firing["Message-ID"]
    assert root.startswith("<opsloop.")
    assert root.endswith("@example.com>")
    assert firing["In-Reply-To"] is None
    for reply in (escalation, resolved):
        assert reply["In-Reply-To"] == root
        assert reply["References"] == root
        assert reply["Message-ID"] != root
    subjects = [m["Subject"] for m in (firing, escalation, resolved)]
    assert subjects == [f"[{p}] DLQEntriesIncreasing dlq=dlq:emails" for p in ("FIRING", "ESCALATION", "RESOLVED")]


def test_message_ids_are_stable_per_alert_instance(smtp_sink: SmtpSink, make_notification: MakeNotification) -> None:
    notifier = email_notifier(smtp_sink, starttls="off")
    first = notifier.message(make_notification())["Message-ID"]
    again = notifier.message(make_notification())["Message-ID"]
    other = notifier.message(make_notification(starts_at="2024-05-02T00:00:00Z"))["Message-ID"]
    assert first == again
    assert first != other


async def test_temporary_smtp_reply_is_transient_and_permanent_reply_is_permanent(
    smtp_sink: SmtpSink, make_notification: MakeNotification
) -> None:
    notifier = email_notifier(smtp_sink, starttls="off")
    smtp_sink.fail_next(1, "451 4.3.0 Mailbox busy")
    with pytest.raises(TransientError, match="SMTP 451"):
        await notifier.notify(make_notification())
    smtp_sink.fail_next(1, "554 5.7.1 Rejected by policy")
    with pytest.raises(PermanentError, match="SMTP 554"):
        await notifier.notify(make_notification())
    await notifier.notify(make_notification())
    assert len(await smtp_sink.inbox.wait_for_async(1)) == 1


async def test_connection_refused_is_transient(smtp_sink: SmtpSink, make_notification: MakeNotification) -> None:
    notifier = email_notifier(smtp_sink, port=free_port(), starttls="off")
    with pytest.raises(TransientError):
        await notifier.notify(make_notification())


async def test_configured_subject_template(smtp_sink: SmtpSink, make_notification: MakeNotification) -> None:
    subject_only = NotifiersConfig.model_validate(
        {"email": [{**notifier_config(smtp_sink, starttls="off"), "subject": "{{ labels.dlq }} needs attention"}]}
    )
    await build_notifiers(subject_only)["email/oncall"].notify(make_notification(kind="recovered"))
    [message] = await smtp_sink.inbox.wait_for_async(1)
    assert message["Subject"] == "[RECOVERED] dlq:emails needs attention"


async def test_a_firing_message_with_a_note_is_a_reply_with_its_own_message_id(
    smtp_sink: SmtpSink, make_notification: MakeNotification
) -> None:
    notifier = email_notifier(smtp_sink, starttls="off")
    await notifier.notify(make_notification())
    await notifier.notify(make_notification(note="plan requeue did not run: cooldown"))
    plain, fallback = await smtp_sink.inbox.wait_for_async(2)
    root = plain["Message-ID"]
    assert plain["In-Reply-To"] is None
    assert fallback["Message-ID"] != root  # two different mails never share one Message-ID
    assert (fallback["In-Reply-To"], fallback["References"]) == (root, root)
    assert fallback["Subject"] == plain["Subject"] == "[FIRING] DLQEntriesIncreasing dlq=dlq:emails"
    other_note = notifier.message(make_notification(note="plan requeue did not run: paused"))
    assert other_note["Message-ID"] not in (root, fallback["Message-ID"])


@pytest.mark.parametrize(
    ("replies", "error", "named"),
    [
        ({"lead@example.com": "550 5.1.1 No such user"}, PermanentError, "lead@example.com (550)"),
        ({"lead@example.com": "450 4.2.1 Mailbox busy"}, TransientError, "lead@example.com (450)"),
    ],
)
async def test_a_partly_refused_message_is_not_counted_as_sent(
    smtp_sink: SmtpSink,
    make_notification: MakeNotification,
    replies: dict[str, str],
    error: type[Exception],
    named: str,
) -> None:
    config = notifier_config(smtp_sink, starttls="off")
    config["to"] = ["oncall@example.com", "lead@example.com", "backup@example.com"]
    built = build_notifiers(NotifiersConfig.model_validate({"email": [config]}))["email/oncall"]
    for address, reply in replies.items():
        smtp_sink.refuse_recipient(address, reply)
    smtp_sink.refuse_recipient("backup@example.com", "551 5.1.6 User has moved")
    with pytest.raises(error, match="recipients refused") as raised:
        await built.notify(make_notification())
    assert named in str(raised.value)
    assert "backup@example.com (551)" in str(raised.value)
    assert "oncall@example.com" not in str(raised.value)
    assert len(await smtp_sink.inbox.wait_for_async(1)) == 1  # the accepted recipient did get it
