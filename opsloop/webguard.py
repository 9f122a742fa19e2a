"""Apply a ``--web.config.file`` while serving: basic auth and headers per request, TLS per connection.

The file is read again whenever it or a file it names changes (checked on each request and each new
TLS connection, by modification time and size) and on SIGHUP, like exporter-toolkit, which reads it for
every request and every handshake. Each new connection is wrapped by a context built from the file as
it is at that moment, so a change (client auth type, versions, curve, certificate) applies to the very
connection that noticed it. bcrypt runs in a thread, its results cached per
(user, hash, password), so a scrape every second costs one hash check per password change.

How the file is read is the caller's choice: in this process (``load_web_config``, the receiver,
which has pydantic loaded anyway) or in a child process (``opsloop.webtls.load_in_child``, the
exporter, which keeps pydantic and PyYAML out of its memory; a reload then costs the child's start,
a fraction of a second, once per change of the files).

The checks (``refusal``, ``response_headers``) know no HTTP framework: the receiver applies them as
an aiohttp middleware (``install``), the exporter in its own small server. aiohttp and bcrypt are
imported only when used, so a process that needs neither does not pay their memory; so are the web
config models (pydantic), which only a process reading its ``--web.config.file`` itself needs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from opsloop.ratelimit import TokenBucket
from opsloop.webtls import LoadedWebConfig, WebConfigError

if TYPE_CHECKING:
    from aiohttp import web

    Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

Loader = Callable[[Path], LoadedWebConfig]

log = logging.getLogger("opsloop.web")

_CACHE_LIMIT = 100


class Refusal(NamedTuple):
    """The answer to a request the web config refuses."""

    status: int
    text: str
    headers: dict[str, str]


@cache
def _dummy_hash() -> bytes:
    """Checked for unknown users too, so a wrong user name takes as long as a wrong password."""
    import bcrypt  # lazily: only basic_auth_users need it

    return bcrypt.hashpw(b"opsloop-unknown-user", bcrypt.gensalt(rounds=10))


def _check_password(password: bytes, hashed: bytes) -> bool:
    import bcrypt  # lazily: see _dummy_hash

    return bcrypt.checkpw(password, hashed)


def read_in_process(path: Path) -> LoadedWebConfig:
    """The default ``Loader``: the file's models in this process."""
    from opsloop.webconfig import load_web_config  # lazily: pydantic and PyYAML only with a file

    return load_web_config(path)


def _stamp(files: list[Path]) -> tuple[tuple[int, int] | None, ...]:
    stamps = []
    for path in files:
        try:
            st = path.stat()
        except OSError:
            stamps.append(None)
        else:
            stamps.append((st.st_mtime_ns, st.st_size))
    return tuple(stamps)


class _PerConnectionContext(ssl.SSLContext):
    """The listening context: it hands each new connection to the guard's context of the moment."""

    guard: WebGuard

    def wrap_bio(  # type: ignore[override]
        self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, server_side: bool = False,
        server_hostname: str | None = None, session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:  # fmt: skip
        context = self.guard.connection_context()
        return context.wrap_bio(incoming, outgoing, server_side, server_hostname, session)


def _refusing_context() -> ssl.SSLContext:
    """Fails every handshake with an internal-error alert: the file is broken, fail closed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.sni_callback = lambda *_: ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
    return ctx


class WebGuard:
    """The current web config of one server; ``None`` path means plain HTTP with no authentication."""

    def __init__(self, path: str | Path | None, read: Loader = read_in_process) -> None:
        self.path = Path(path) if path else None
        self._read = read
        self._loaded: LoadedWebConfig | None = None
        self._context: ssl.SSLContext | None = None
        self._error: str | None = None
        self._stamp: tuple[tuple[int, int] | None, ...] = ()
        self._auth_cache: dict[bytes, bool] = {}
        self._limiter: TokenBucket | None = None
        self._refusing = _refusing_context()
        if self.path is not None:
            self._load()
            if self._error is not None:
                raise WebConfigError(self._error)

    def _files(self) -> list[Path]:
        if self._loaded is not None:
            return self._loaded.files
        return [self.path] if self.path is not None else []

    def _load(self) -> None:
        assert self.path is not None
        stamp = _stamp(self._files())
        try:
            loaded = self._read(self.path)
            self._context = loaded.ssl_context()
        except WebConfigError as exc:
            if self._error != str(exc):
                log.error("cannot use the web config file", extra={"file": str(self.path), "error": str(exc)})
            self._error = str(exc)
            self._stamp = stamp
            return
        if self._loaded is not None or self._error is not None:
            log.info("web config file reloaded", extra={"file": str(self.path)})
        self._loaded, self._error = loaded, None
        self._stamp = _stamp(loaded.files)
        self._auth_cache.clear()
        self._set_rate_limit()

    def _set_rate_limit(self) -> None:
        """A new bucket only when the limits change, so a reload does not refill it."""
        assert self._loaded is not None
        limit = self._loaded.config.rate_limit
        current = (self._limiter.interval, self._limiter.burst) if self._limiter else (0.0, 0)
        if (limit.interval, limit.burst) == current or (not limit.interval and self._limiter is None):
            return
        self._limiter = TokenBucket(limit.interval, limit.burst) if limit.interval else None
        log.info("rate limit set", extra={"interval_seconds": limit.interval, "burst": limit.burst})

    def refresh(self, force: bool = False) -> None:
        """Reload when a file changed (or always, for SIGHUP)."""
        if self.path is not None and (force or _stamp(self._files()) != self._stamp):
            self._load()

    @property
    def tls(self) -> bool:
        return self._context is not None

    def server_context(self) -> ssl.SSLContext | None:
        """The context to listen with, or None for plain HTTP (decided at start, as exporter-toolkit does)."""
        if self._context is None:
            return None
        listening = _PerConnectionContext(ssl.PROTOCOL_TLS_SERVER)
        listening.guard = self
        return listening

    def connection_context(self) -> ssl.SSLContext:
        """The context for a new connection: the file as it is now, or one that refuses the handshake."""
        self.refresh()
        if self._error is not None or self._context is None:
            return self._refusing
        return self._context

    async def _authorized(self, header: str) -> bool:
        assert self._loaded is not None
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self._loaded.config.basic_auth_users.get(user)
        known = hashed is not None
        hashed_bytes = hashed.encode() if hashed is not None else _dummy_hash()
        key = hashlib.sha256(b"\0".join((user.encode(), hashed_bytes, password.encode()))).digest()
        ok = self._auth_cache.get(key)
        if ok is None:
            ok = await asyncio.to_thread(_check_password, password.encode(), hashed_bytes)
            if len(self._auth_cache) >= _CACHE_LIMIT:
                self._auth_cache.clear()
            self._auth_cache[key] = ok
        return ok and known

    async def refusal(self, authorization: str, peercert: dict[str, Any] | None) -> Refusal | None:
        """Why the file refuses a request with this Authorization header and client certificate, or None."""
        self.refresh()
        if self._error is not None or self._loaded is None:
            return Refusal(500, "Internal Server Error\n", {})
        if self._limiter is not None and not self._limiter.allow():
            return Refusal(429, "Too Many Requests\n", {})
        if self._loaded.config.basic_auth_users and not await self._authorized(authorization):
            return Refusal(401, "Unauthorized\n", {"WWW-Authenticate": "Basic"})
        if not self._client_san_allowed(peercert):
            return Refusal(403, "Forbidden\n", {})
        return None

    def response_headers(self) -> dict[str, str]:
        """The headers the file adds to every response (``http_server_config.headers``)."""
        return self._loaded.config.http_server_config.headers if self._loaded is not None else {}

    def install(self, app: web.Application) -> None:
        """Put every route of an aiohttp ``app`` behind the web config (a no-op without ``--web.config.file``)."""
        from aiohttp import web  # lazily: the exporter serves without aiohttp

        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            peercert = request.transport.get_extra_info("peercert") if request.transport is not None else None
            refused = await self.refusal(request.headers.get("Authorization", ""), peercert)
            if refused is not None:
                return web.Response(status=refused.status, text=refused.text, headers=refused.headers)
            return await handler(request)

        async def add_headers(_request: web.Request, response: web.StreamResponse) -> None:
            response.headers.update(self.response_headers())

        if self.path is not None:
            app.middlewares.insert(0, middleware)
            app.on_response_prepare.append(add_headers)

    def _client_san_allowed(self, peercert: dict[str, Any] | None) -> bool:
        assert self._loaded is not None
        allowed = self._loaded.config.tls_server_config.client_allowed_sans
        if allowed is None:
            return True
        cert = peercert or {}
        sans = [value for _kind, value in cert.get("subjectAltName", ())]
        return any(san in allowed for san in sans)
