"""Email through SMTP: multipart text + HTML, STARTTLS required by default, stateless threading.

Threading needs no stored state: the plain firing message's ``Message-ID`` is derived from the
notification's ``thread_key``, so every other message of the alert instance (resolved, escalation,
recovered, and a firing message carrying a note) gets its own ``Message-ID`` and points at that root with
``In-Reply-To`` and ``References``, even after a restart; mail clients show one thread per alert instance.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from functools import partial
from pathlib import Path

import aiosmtplib
from opsloop.receiver.domain import notifier_key
from opsloop.receiver.notify.base import KIND_TITLES, Notification, Pace, PermanentError, TransientError
from opsloop.receiver.notify.config import EmailConfig, SmtpConfig
from opsloop.receiver.notify.group import GroupNotification, html_body, subject, text_body
from opsloop.receiver.notify.render import MessageTemplate, load_template, load_templates
from prometheus_client import Counter

_START_TLS = {"required": True, "opportunistic": None, "off": False}


def message_id(domain: str, *parts: str) -> str:
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
    return f"<opsloop.{digest}@{domain}>"


def tls_context(smtp: SmtpConfig) -> ssl.SSLContext:
    """Verify the server certificate against the system CAs, or only ``ca_file`` when it is set."""
    try:
        return ssl.create_default_context(cafile=str(smtp.ca_file) if smtp.ca_file else None)
    except OSError as exc:  # ssl.SSLError for a file without certificates is an OSError too
        raise ValueError(f"cannot load ca_file {smtp.ca_file}: {exc.strerror or exc}") from None


def refused(errors: Mapping[str, aiosmtplib.SMTPResponse], name: str) -> Exception | None:
    """The error for recipients the server refused while it accepted others, or None when none was refused.

    ``aiosmtplib.send`` raises only when every recipient is refused; a partial refusal comes back as its
    return value. Any 4xx refusal is worth retrying (the retry goes to every recipient again); 5xx only
    is permanent.
    """
    if not errors:
        return None
    listed = ", ".join(f"{address} ({response.code})" for address, response in sorted(errors.items()))
    codes = [response.code for response in errors.values()]
    error: type[Exception] = TransientError if any(400 <= c < 500 for c in codes) else PermanentError
    return error(f"{name}: recipients refused: {listed}")


def classify(exc: Exception, name: str) -> Exception:
    """Map an SMTP failure to TransientError (connection trouble, 4xx replies) or PermanentError."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        error: type[Exception] = TransientError if any(400 <= c < 500 for c in codes) else PermanentError
        return error(f"{name}: every recipient refused ({', '.join(map(str, codes))})")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        error = TransientError if 400 <= exc.code < 500 else PermanentError
        return error(f"{name}: SMTP {exc.code} {exc.message}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return PermanentError(f"{name}: server certificate not trusted ({exc.verify_message})")
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPTimeoutError | ConnectionError | TimeoutError):
        return TransientError(f"{name}: {type(exc).__name__}: {exc}")
    if isinstance(exc, ssl.SSLError | aiosmtplib.SMTPException):
        # For example "STARTTLS extension not supported": sending in clear text is not an option.
        return PermanentError(f"{name}: {type(exc).__name__}: {exc}")
    return TransientError(f"{name}: {type(exc).__name__}: {exc}")


class EmailNotifier:
    """Sends one multipart email per notification, one SMTP connection per message."""

    def __init__(
        self, config: EmailConfig, *, subject: MessageTemplate, text: MessageTemplate, html: MessageTemplate
    ) -> None:
        self.name = notifier_key("email", config.name)
        self.pace: Pace | None = None
        self.edits = False
        self._config = config
        self._smtp = config.smtp
        self._password = config.smtp.secret("password")
        self._tls = tls_context(config.smtp)
        self._domain = parseaddr(config.sender)[1].rsplit("@", 1)[1]
        self._subject = subject
        self._text = text
        self._html = html

    @classmethod
    def from_config(
        cls, config: EmailConfig, templates_dir: Path | None = None, failures: Counter | None = None
    ) -> EmailNotifier:
        load = partial(
            load_template, notifier_key("email", config.name), templates_dir=templates_dir, failures=failures
        )
        templates = load_templates(
            subject=partial(load, "title", "text", default="title.txt.j2", source=config.subject, key="subject"),
            text=partial(load, "text", "text", default="email.txt.j2", path=config.templates.text),
            html=partial(load, "html", "html", default="email.html.j2", path=config.templates.html),
        )
        return cls(config, **templates)

    def _headers(self, subject: str) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = subject
        msg["From"] = self._config.sender
        msg["To"] = ", ".join(self._config.to)
        msg["Date"] = format_datetime(datetime.now(UTC))
        return msg

    def message(self, n: Notification) -> EmailMessage:
        """The email; every message of one thread_key shares the subject behind its status prefix."""
        msg = self._headers(f"[{KIND_TITLES[n.kind]}] {self._subject.render(n)}")
        root = message_id(self._domain, n.incident.thread_key)
        if n.kind == "firing" and not n.note:
            msg["Message-ID"] = root  # only the plain firing message: two different mails never share an ID
        else:
            msg["Message-ID"] = message_id(self._domain, n.incident.thread_key, n.kind, n.note)
            msg["In-Reply-To"] = root
            msg["References"] = root
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(self._text.render(n))
        msg.add_alternative(self._html.render(n), subtype="html")
        return msg

    def group_message(self, group: GroupNotification) -> EmailMessage:
        """One mail about a group of alerts; every later mail of the group replies to its first (``thread``)."""
        title, _, rest = subject(group).partition(": ")
        msg = self._headers(f"[{title}] {rest}")
        msg["Message-ID"] = message_id(self._domain, "group", group.key, str(group.message))
        if group.thread:
            msg["In-Reply-To"] = group.thread
            msg["References"] = group.thread
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(text_body(group, self._text.render))
        msg.add_alternative(html_body(group, self._text.render), subtype="html")
        return msg

    def group_fit(self, group: GroupNotification) -> int:
        """A mail has no size limit that matters here: one mail per group."""
        return len(group.alerts)

    def preview(self, notification: Notification) -> str:
        return self._preview(self.message(notification))

    def preview_group(self, group: GroupNotification) -> str:
        return self._preview(self.group_message(group))

    @staticmethod
    def _preview(msg: EmailMessage) -> str:
        text = msg.get_body(("plain",))
        body = text.get_content() if text is not None else ""
        return f"Subject: {msg['Subject']}\nTo: {msg['To']}\n\n{body}"

    async def notify_group(self, group: GroupNotification) -> str | None:
        msg = await asyncio.to_thread(self.group_message, group)  # a thousand alerts: not on the event loop
        await self._send(msg)
        return str(msg["Message-ID"])

    async def notify(self, notification: Notification) -> None:
        await self._send(self.message(notification))

    async def _send(self, msg: EmailMessage) -> None:
        smtp = self._smtp
        try:
            errors, _ = await aiosmtplib.send(
                msg,
                hostname=smtp.host,
                port=smtp.port,
                username=smtp.username,
                password=self._password,
                use_tls=smtp.tls,
                start_tls=_START_TLS[smtp.starttls],
                tls_context=self._tls,
                timeout=smtp.timeout,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise classify(exc, self.name) from exc
        partial = refused(errors, self.name)
        if partial is not None:
            raise partial

    async def close(self) -> None:
        """Nothing to release: every message uses its own SMTP connection."""
