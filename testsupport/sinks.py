"""Local stand-ins for Slack's incoming webhooks and for an SMTP server, used by the demo and the tests.

``SlackSink`` answers like Slack's incoming webhooks (limits and codes from ``slack_limits``, which cites
Slack's documentation): 200 ``ok``, 400 ``invalid_payload`` / ``invalid_blocks`` for payloads Slack would
refuse, 429 with ``Retry-After`` when one webhook posts faster than once a second, 404 ``no_service``
for an unknown path, and programmed errors (500s, 429s, Slack's error codes) for the next requests.
``SmtpSink`` is an aiosmtpd server that can require STARTTLS with a self-signed certificate made at
start (its ``ca_file`` lets a client verify it) and AUTH with one username and password.

Both keep what they received in ``messages`` and wake waiters; both run either on a loop of their own
in a thread (``start()``/``stop()``, for the demo and subprocess tests) or, for SlackSink, on the
caller's loop (``async with``).
"""

from __future__ import annotations

import abc
import asyncio
import datetime as dt
import ipaddress
import json
import math
import ssl
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Generic, Self, TypeVar, cast

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from opsloop.testsupport.servers import LOOPBACK
from opsloop.testsupport.slack_limits import POST_INTERVAL, RATE_TOLERANCE, WEBHOOK_ERRORS, payload_error

T = TypeVar("T")

DEFAULT_WEBHOOK_PATH = "/services/T0000/B0000/opsloop"


class Inbox(Generic[T]):
    """Received items, safe to fill from a server thread and to wait on from a test or the demo."""

    def __init__(self, on_message: Callable[[T], None] | None = None) -> None:
        self.items: list[T] = []
        self._on_message = on_message
        self._changed = threading.Condition()

    def add(self, item: T) -> None:
        with self._changed:
            self.items.append(item)
            self._changed.notify_all()
        if self._on_message is not None:
            self._on_message(item)

    def wait_for(self, count: int, seconds: float = 10.0) -> list[T]:
        """Block until at least ``count`` items arrived; TimeoutError after ``seconds``."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.items) >= count, seconds):
                raise TimeoutError(f"{len(self.items)} of {count} messages arrived within {seconds}s")
            return list(self.items)

    async def wait_for_async(self, count: int, seconds: float = 10.0) -> list[T]:
        return await asyncio.to_thread(self.wait_for, count, seconds)


class LoopThread:
    """An event loop running in a daemon thread, so async servers can be used from plain code."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@dataclass(frozen=True)
class SlackMessage:
    path: str
    payload: dict[str, Any]
    received_at: float  # time.monotonic()


class HttpStandIn(abc.ABC):
    """An aiohttp server on loopback, run on the caller's loop (``async with``) or in a thread of its own.

    Without a ``port`` it binds port 0 and reads back the port the kernel gave it, so no other process
    can take the port between choosing and binding it; ``port`` is known once started.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or 0
        self._runner: web.AppRunner | None = None
        self._thread: LoopThread | None = None

    @abc.abstractmethod
    def routes(self, app: web.Application) -> None:
        """Add the stand-in's handlers; each subclass speaks one service's contract."""

    async def start_async(self) -> Self:
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, LOOPBACK, self.port).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop_async(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> Self:
        """Serve from a loop of its own in a daemon thread."""
        self._thread = LoopThread(type(self).__name__)
        self._thread.run(self.start_async())
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.run(self.stop_async())
            self._thread.close()
            self._thread = None

    async def __aenter__(self) -> Self:
        return await self.start_async()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_async()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SlackSink(HttpStandIn):
    """An HTTP server on loopback behaving like Slack's incoming webhooks, recording what it accepts.

    Every path under ``/services/`` is a webhook with its own rate limit. ``responses`` lists the
    status of every request in order, so tests can count the 429s and 500s a client went through.
    """

    def __init__(
        self,
        *,
        interval: float = POST_INTERVAL,
        port: int | None = None,
        on_message: Callable[[SlackMessage], None] | None = None,
    ) -> None:
        super().__init__(port)
        self.interval = interval
        self.inbox: Inbox[SlackMessage] = Inbox(on_message)
        self.responses: list[int] = []
        self._failures: deque[tuple[int, float | None, str]] = deque()
        self._last_accepted: dict[str, float] = {}

    @property
    def messages(self) -> list[SlackMessage]:
        return self.inbox.items

    def url(self, path: str = DEFAULT_WEBHOOK_PATH) -> str:
        return f"http://{LOOPBACK}:{self.port}{path}"

    def fail_next(
        self, count: int, status: int = 500, retry_after: float | None = None, error: str | None = None
    ) -> None:
        """Answer the next ``count`` requests with ``status`` (a 429 carries ``Retry-After``), or with one of
        Slack's webhook ``error`` codes (``channel_not_found``, ...) and the status Slack sends it with."""
        if error is not None:
            status = WEBHOOK_ERRORS[error]
        text = error or ("rate_limited" if status == 429 else "error")
        self._failures.extend([(status, retry_after, text)] * count)

    async def _handle(self, request: web.Request) -> web.Response:
        response = self._answer(request.path, await request.read())
        self.responses.append(response.status)
        return response

    def _answer(self, path: str, body: bytes) -> web.Response:
        if not path.startswith("/services/"):
            return web.Response(status=404, text="no_service")
        if self._failures:
            status, retry_after, text = self._failures.popleft()
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            return web.Response(status=status, text=text, headers=headers)
        try:
            payload = json.loads(body)
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        error = payload_error(payload)
        if error:
            return web.Response(status=400, text=error)
        now = time.monotonic()
        wait = self._last_accepted.get(path, -math.inf) + self.interval * RATE_TOLERANCE - now
        if wait > 0:
            return web.Response(status=429, text="rate_limited", headers={"Retry-After": str(math.ceil(wait))})
        self._last_accepted[path] = now
        self.inbox.add(SlackMessage(path, payload, now))
        return web.Response(text="ok")

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{tail:.*}", self._handle)


def self_signed_certificate(directory: Path, host: str = LOOPBACK) -> tuple[Path, Path]:
    """Write ``cert.pem`` and ``key.pem`` for ``host`` (an IP) and localhost, valid for one day.

    The certificate is its own CA, so a client verifies it by trusting ``cert.pem`` as ``ca_file``.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class _SmtpHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self.sink.refused.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.sink.failures:
            return self.sink.failures.popleft()
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        self.sink.inbox.add(cast(EmailMessage, BytesParser(policy=policy.default).parsebytes(content)))
        self.sink.accepting += 1
        self.sink.most_accepting = max(self.sink.most_accepting, self.sink.accepting)
        try:
            if self.sink.accept_delay:  # a slow server: the message is in, the client still waits for the 250
                await asyncio.sleep(self.sink.accept_delay)
        finally:
            self.sink.accepting -= 1
        return "250 Message accepted for delivery"


class _BoundController(Controller):
    """aiosmtpd's controller, which can listen on port 0: the port the kernel gave is read back before
    the controller's own first connection (which needs it), so the socket is held from bind to use."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpSink:
    """An aiosmtpd server on loopback collecting parsed messages.

    With ``starttls=True`` it offers and requires STARTTLS using a fresh self-signed certificate
    (``ca_file``); with ``credentials`` it requires AUTH (only offered over TLS, like real servers).
    """

    def __init__(
        self,
        *,
        starttls: bool = False,
        credentials: tuple[str, str] | None = None,
        port: int | None = None,
        on_message: Callable[[EmailMessage], None] | None = None,
    ) -> None:
        self.host = LOOPBACK
        self.port = port or 0
        """Port 0 until started: the server binds a port the kernel picks (see ``_BoundController``)."""
        self.inbox: Inbox[EmailMessage] = Inbox(on_message)
        self.failures: deque[str] = deque()
        self.refused: dict[str, str] = {}
        self.accept_delay = 0.0
        """Seconds between taking a message and answering 250, as a slow mail server does."""
        self.accepting = 0
        """Messages taken whose 250 is not answered yet (their clients are waiting for it)."""
        self.most_accepting = 0
        """The most messages ever waiting for their 250 at once."""
        self.ca_file: Path | None = None
        self._starttls = starttls
        self._credentials = credentials
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._controller: Controller | None = None

    @property
    def messages(self) -> list[EmailMessage]:
        return self.inbox.items

    def fail_next(self, count: int, reply: str = "451 4.3.0 Try again later") -> None:
        """Answer the next ``count`` messages' DATA with ``reply`` (e.g. ``554 5.7.1 Rejected``)."""
        self.failures.extend([reply] * count)

    def refuse_recipient(self, address: str, reply: str = "550 5.1.1 No such user here") -> None:
        """Answer ``RCPT TO`` for ``address`` (any case) with ``reply``, e.g. ``450 4.2.1 Mailbox busy``.

        The other recipients of the same message are still accepted, as a real server does.
        """
        self.refused[address.lower()] = reply

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            self._credentials is not None
            and isinstance(auth_data, LoginPassword)
            and (auth_data.login.decode(), auth_data.password.decode()) == self._credentials
        )
        return AuthResult(success=ok, handled=False)

    def start(self) -> SmtpSink:
        options: dict[str, Any] = {}
        if self._starttls:
            self._dir = tempfile.TemporaryDirectory(prefix="opsloop-smtp-")
            cert, key = self_signed_certificate(Path(self._dir.name), self.host)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            self.ca_file = cert
            options |= {"tls_context": context, "require_starttls": True}
        if self._credentials is not None:
            options |= {"authenticator": self._authenticate, "auth_required": True}
        self._controller = _BoundController(_SmtpHandler(self), hostname=self.host, port=self.port, **options)
        self._controller.start()
        self.port = self._controller.port
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
