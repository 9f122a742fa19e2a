"""HTTP endpoints for Alertmanager and Prometheus: ``POST /alerts``, ``/metrics``, ``/-/healthy``, ``/-/ready``.

``POST /alerts`` only authenticates, validates, routes (pure computation) and writes the alerts and the
work they cause in one store transaction; the 200 means the work is durable. Workers do the rest.
Status codes tell Alertmanager what to do: 401 (credentials), 413 (body over the limit) and 400 (a
payload that can never be valid) are not worth retrying, 503 (store unavailable) is.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import time
from dataclasses import dataclass

from aiohttp import web
from opsloop.receiver.config import AuthConfig, ReceiverConfig
from opsloop.receiver.domain import Alert, RoutedAlert
from opsloop.receiver.metrics import ReceiverMetrics
from opsloop.receiver.models import PayloadError, parse_payload
from opsloop.receiver.routing import decide
from opsloop.receiver.store import Store, StoreUnavailable
from opsloop.receiver.worker import Worker
from prometheus_client import CONTENT_TYPE_LATEST

from opsloop.landing import landing_page

log = logging.getLogger(__name__)


class Credential:
    """One expected ``Authorization`` header, compared in constant time."""

    def __init__(self, scheme: str, secret: str) -> None:
        self.scheme = scheme
        self._secret = secret.encode()

    @classmethod
    def bearer(cls, token: str) -> Credential:
        if not token:
            raise ValueError("the bearer token is empty")
        return cls("Bearer", token)

    @classmethod
    def from_auth(cls, auth: AuthConfig) -> Credential:
        """Read the configured secret now, so a missing file fails at startup."""
        if auth.basic_auth is not None:
            basic = auth.basic_auth
            password = basic.secret("password") or ""
            return cls("Basic", base64.b64encode(f"{basic.username}:{password}".encode()).decode())
        return cls.bearer(auth.secret("bearer_token") or "")

    def allows(self, header: str | None) -> bool:
        scheme, _, given = (header or "").strip().partition(" ")
        # compare_digest runs even for a wrong scheme, so timing says nothing about the secret.
        same = hmac.compare_digest(given.strip().encode(), self._secret)
        return same and scheme.lower() == self.scheme.lower()

    def challenge(self) -> web.HTTPUnauthorized:
        return web.HTTPUnauthorized(
            text='{"error": "unauthorized"}', content_type="application/json",
            headers={"WWW-Authenticate": f'{self.scheme} realm="opsloop-receiver"'},
        )  # fmt: skip


@dataclass
class ReceiverState:
    """What the handlers share; the app's lifecycle fills in the store and the worker."""

    config: ReceiverConfig
    metrics: ReceiverMetrics
    webhook_auth: Credential
    admin_auth: Credential | None
    store: Store | None = None
    worker: Worker | None = None


STATE = web.AppKey("state", ReceiverState)


def json_error(status: type[web.HTTPError], message: str, **kwargs: int) -> web.HTTPError:
    """An HTTP error whose body is ``{"error": message}``."""
    return status(text=json.dumps({"error": message}), content_type="application/json", **kwargs)


def incoming(config: ReceiverConfig, alert: Alert, group_key: str = "") -> RoutedAlert:
    decision = decide(config, alert.labels)
    return RoutedAlert(
        alert, plans=[(m.plan.name, m.values) for m in decision.plans], notifiers=decision.notifiers,
        note=decision.note, notify_firing=not decision.plans or any(m.plan.notify_firing for m in decision.plans),
        group_key=group_key, group_windows=decision.windows,
    )  # fmt: skip


async def receive_alerts(request: web.Request) -> web.Response:
    state = request.app[STATE]
    outcome = state.metrics.webhook_outcomes
    if not state.webhook_auth.allows(request.headers.get("Authorization")):
        outcome["unauthorized"].inc()
        raise state.webhook_auth.challenge()
    limit = state.config.limits.max_body_bytes
    try:
        if request.content_length is not None and request.content_length > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        outcome["too_large"].inc()
        size = request.content_length or limit + 1
        raise json_error(
            web.HTTPRequestEntityTooLarge, f"body over {limit} bytes", max_size=limit, actual_size=size
        ) from None
    try:
        payload = parse_payload(body)
    except PayloadError as exc:
        outcome["invalid"].inc()
        log.warning("invalid webhook", extra={"error": str(exc)[:500]})
        raise json_error(web.HTTPBadRequest, str(exc)) from None
    alerts = [incoming(state.config, alert, payload.group_key) for alert in payload.alerts]
    if state.store is None:
        outcome["unavailable"].inc()
        raise json_error(web.HTTPServiceUnavailable, "store not open")
    try:
        await state.store.ingest(alerts, payload.external_url, payload.truncated_alerts, time.time())
    except StoreUnavailable as exc:
        outcome["unavailable"].inc()
        log.error("webhook not stored", extra={"error": str(exc), "alerts": len(alerts)})
        raise json_error(web.HTTPServiceUnavailable, "store unavailable, retry later") from None
    outcome["accepted"].inc()
    for alert in payload.alerts:
        state.metrics.alert_statuses[alert.status].inc()
    if state.worker is not None and any(routed.work_due_now for routed in alerts):
        # Not for messages that wait for their group: a claim per webhook would find nothing due and cost
        # the store a transaction per webhook (its poll finds them when due).
        state.worker.wake()
    # What json_response would write, without encoding the same two keys for every webhook.
    return web.Response(
        body=b'{"status": "accepted", "alerts": %d}' % len(alerts), content_type="application/json", charset="utf-8"
    )


TELEMETRY_PATH = web.AppKey("telemetry_path", str)


CONSOLE_ROUTE = "console"
"""The name of the console's entry route, present only when the console is served."""


async def landing(request: web.Request) -> web.Response:
    """Links to the endpoints; no configuration, no secrets."""
    note = "<p>Alertmanager posts its webhooks to <code>/alerts</code>.</p>"
    if CONSOLE_ROUTE in request.app.router.named_resources():
        note += '<p>People on call use the <a href="/ui/">incident console</a>.</p>'
    return web.Response(
        text=landing_page("opsloop receiver", request.app[TELEMETRY_PATH], note), content_type="text/html"
    )


async def healthy(request: web.Request) -> web.Response:
    return web.Response(text="OK\n")


async def ready(request: web.Request) -> web.Response:
    """Ready when the store answers: a replica without its store must not get webhooks."""
    store = request.app[STATE].store
    try:
        if store is None:
            raise StoreUnavailable("store not open")
        async with asyncio.timeout(2):
            await store.ping()
    except (StoreUnavailable, TimeoutError) as exc:
        return web.Response(status=503, text=f"store unavailable: {exc}\n")
    return web.Response(text="OK\n")


async def metrics(request: web.Request) -> web.Response:
    """Queue depth, oldest pending age and pauses are read from the store at scrape time."""
    state = request.app[STATE]
    try:
        if state.store is None:
            raise StoreUnavailable("store not open")
        async with asyncio.timeout(2):
            now = time.time()
            state.metrics.store.observe(await state.store.queue_stats(now), await state.store.pauses())
    except (StoreUnavailable, TimeoutError) as exc:
        state.metrics.store.up = 0
        log.warning("metrics without store figures", extra={"error": str(exc)})
    return web.Response(body=state.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
