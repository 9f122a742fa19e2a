"""Console sessions: sign-in, session cookies, CSRF tokens and the sign-in rate limit.

A session id is 32 random bytes in an ``HttpOnly``, ``SameSite=Strict`` cookie (``Secure`` over TLS);
the store keeps only its SHA-256, so reading the database does not let anyone sign in. Sessions live in
the store, so every replica knows them and sign-out ends them everywhere. A session's CSRF token is an
HMAC of its id: bound to that session, never stored, compared in constant time. The sign-in form, which
has no session yet, uses a double-submit cookie instead.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

from aiohttp import web
from opsloop.receiver.console.config import ConsoleConfig
from opsloop.receiver.console.passwords import check_password
from opsloop.receiver.store import Store

log = logging.getLogger(__name__)

SESSION_COOKIE = "opsloop_session"
LOGIN_COOKIE = "opsloop_login"
CSRF_FIELD = "csrf"
MAX_TRACKED_CLIENTS = 10_000


def digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def csrf_token(secret: str) -> str:
    return hmac.new(secret.encode(), b"opsloop-console-csrf", hashlib.sha256).hexdigest()


def csrf_matches(secret: str, given: str | None) -> bool:
    return hmac.compare_digest(csrf_token(secret).encode(), (given or "").encode())


@dataclass(frozen=True)
class Session:
    """A signed-in person: ``name`` is what the timeline records for their actions."""

    id: str
    name: str
    expires_at: float

    @property
    def csrf(self) -> str:
        return csrf_token(self.id)


@dataclass
class SignInLimiter:
    """Failed sign-ins per client address in a sliding window (kept in memory, per replica)."""

    limit: int
    window: float
    failures: dict[str, deque[float]] = field(default_factory=dict)

    def blocked_for(self, client: str, now: float) -> float:
        """Seconds until ``client`` may try again (0 when it may try now)."""
        seen = self.failures.get(client)
        if not seen:
            return 0.0
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        return seen[0] + self.window - now if len(seen) >= self.limit else 0.0

    def failed(self, client: str, now: float) -> None:
        if client not in self.failures and len(self.failures) >= MAX_TRACKED_CLIENTS:
            del self.failures[next(iter(self.failures))]  # the oldest client first: memory stays bounded
        self.failures.setdefault(client, deque(maxlen=self.limit)).append(now)

    def succeeded(self, client: str) -> None:
        self.failures.pop(client, None)


class Authenticator:
    """Checks credentials given on the sign-in page and keeps sessions in the store."""

    def __init__(self, config: ConsoleConfig, admin_token: str | None) -> None:
        self.config = config
        self._admin = admin_token.encode() if admin_token and config.admin_token_sign_in else None
        self._users = {user.name: user.password_hash for user in config.users}
        # A hash to check against when the name is unknown, so timing does not tell which names exist.
        self._decoy = next(iter(self._users.values()), None)
        self.limiter = SignInLimiter(config.max_failed_sign_ins, config.failed_sign_in_window)

    @property
    def enabled(self) -> bool:
        return self.config.enabled and (self._admin is not None or bool(self._users))

    @property
    def token_sign_in(self) -> bool:
        return self._admin is not None

    def identify(self, name: str, secret: str) -> str | None:
        """The session name for valid credentials, else None.

        With a user's password the name is the user's; with the admin token it is the name the person
        typed, marked as signed in by token.
        """
        if name in self._users:
            return name if check_password(secret, self._users[name]) else None
        if self._decoy is not None:
            check_password(secret, self._decoy)
        if self._admin is not None and hmac.compare_digest(secret.encode(), self._admin):
            return f"{name or 'admin'} (admin token)"
        return None

    async def start(self, store: Store, name: str, now: float) -> Session:
        session = Session(secrets.token_urlsafe(32), name, now + self.config.session_ttl)
        await store.create_session(digest(session.id), name, now, session.expires_at)
        return session

    @staticmethod
    async def find(store: Store, session_id: str | None, now: float) -> Session | None:
        if not session_id or len(session_id) > 100:
            return None
        found = await store.session(digest(session_id), now)
        return Session(session_id, found[0], found[1]) if found else None

    @staticmethod
    async def end(store: Store, session: Session) -> None:
        await store.end_session(digest(session.id))


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str, max_age: float,
               secure: bool) -> None:  # fmt: skip
    response.set_cookie(
        name, value, max_age=int(max_age), path="/ui/", httponly=True, samesite="Strict",
        secure=secure or request.secure,
    )  # fmt: skip


def safe_next(target: str | None) -> str:
    """Only a console path is a valid place to return to after sign-in (no open redirect)."""
    if target and target.startswith("/ui/") and not target.startswith("/ui//") and "\\" not in target:
        return target
    return "/ui/incidents"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SIGNED_IN: ContextVar[Session | None] = ContextVar("console_session", default=None)
"""The signed-in session of the request being handled (set by the console's middleware)."""


def current() -> Session:
    session = SIGNED_IN.get()
    assert session is not None  # the console middleware let the request through
    return session


def now() -> float:
    return time.time()
