"""The console's gate: security headers on every page, a session for every page but sign-in, and a CSRF
token on every state-changing request.

Pages answer with a strict ``Content-Security-Policy`` (scripts and styles only from the receiver, no
inline script), ``X-Frame-Options: DENY`` and ``Cache-Control: no-store``. A request without a valid
session is sent to the sign-in page (or gets 401 on the JSON poll); a POST without this session's CSRF
token gets 403, before its handler runs.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from aiohttp import web
from opsloop.receiver.console.auth import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SIGNED_IN,
    Authenticator,
    Handler,
    csrf_matches,
    now,
)
from opsloop.receiver.handlers import STATE
from opsloop.receiver.store import StoreUnavailable

log = logging.getLogger(__name__)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
PUBLIC = ("/ui/login", "/ui/static/")
AUTHENTICATOR = web.AppKey("console_authenticator", Authenticator)


def secure_headers(response: web.StreamResponse, cache: bool = False) -> None:
    response.headers.update(HEADERS)
    if not cache:
        response.headers["Cache-Control"] = "no-store"


@web.middleware
async def console_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path != "/ui" and not request.path.startswith("/ui/"):
        return await handler(request)
    try:
        response = await _guarded(request, handler)
    except web.HTTPException as exc:
        secure_headers(exc)
        raise
    except StoreUnavailable as exc:
        log.warning("console page without store", extra={"path": request.path, "error": str(exc)})
        error = web.HTTPServiceUnavailable(text="The store is unavailable; try again shortly.\n")
        secure_headers(error)
        raise error from None
    secure_headers(response, cache=request.path.startswith("/ui/static/"))
    return response


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == "/ui" or request.path == "/ui/":
        raise web.HTTPSeeOther("/ui/incidents")
    if request.path.startswith(PUBLIC):
        return await handler(request)
    store = request.app[STATE].store
    if store is None:
        raise StoreUnavailable("store not open")
    session = await request.app[AUTHENTICATOR].find(store, request.cookies.get(SESSION_COOKIE), now())
    if session is None:
        if request.path.startswith("/ui/api/"):
            raise web.HTTPUnauthorized(text='{"error": "sign in again"}', content_type="application/json")
        target = request.path_qs if request.method == "GET" else "/ui/incidents"
        raise web.HTTPSeeOther(f"/ui/login?next={quote(target, safe='')}")
    if request.method not in ("GET", "HEAD"):
        form = await request.post()
        if not csrf_matches(session.id, str(form.get(CSRF_FIELD, ""))):
            log.warning("console request without a valid CSRF token", extra={"path": request.path,
                        "session_name": session.name})  # fmt: skip
            raise web.HTTPForbidden(text="Missing or invalid CSRF token: reload the page and try again.\n")
    token = SIGNED_IN.set(session)
    try:
        return await handler(request)
    finally:
        SIGNED_IN.reset(token)
