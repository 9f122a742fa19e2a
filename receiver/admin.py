"""Admin API under ``/api/``, behind its own bearer token (``admin.token*``).

- ``GET /api/incidents[?status=firing|resolved&limit=N]`` and ``GET /api/incidents/{id}``: incidents with
  their plan runs, actions and deliveries.
- ``GET /api/automation``: active pauses. ``POST /api/automation/pause`` / ``resume`` (all plans) and
  ``POST /api/plans/{name}/pause`` / ``resume`` (one plan); pause bodies may carry ``{"reason": "..."}``.
- ``POST /api/plans/{name}/run`` with ``{"labels": {...}, "dry_run": false}``: run a plan by hand (the
  labels are validated against the plan's patterns like an alert's).
- ``POST /api/explain`` with a webhook payload: which routes and plans would match each alert and why,
  and whether automation is paused; nothing is stored or run.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from opsloop.receiver.domain import GLOBAL, IncidentView
from opsloop.receiver.handlers import STATE, ReceiverState, json_error
from opsloop.receiver.models import PayloadError, parse_payload
from opsloop.receiver.routing import explain, plan_values
from opsloop.receiver.store import Store, StoreUnavailable

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def admin_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Guard ``/api/``; the admin API is off (403) unless an admin token is configured."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    auth = request.app[STATE].admin_auth
    if auth is None:
        raise json_error(web.HTTPForbidden, "the admin API is disabled: configure admin.token_file")
    if not auth.allows(request.headers.get("Authorization")):
        raise auth.challenge()
    try:
        return await handler(request)
    except StoreUnavailable as exc:
        raise json_error(web.HTTPServiceUnavailable, str(exc)) from None


def _store(request: web.Request) -> Store:
    store = request.app[STATE].store
    if store is None:
        raise StoreUnavailable("store not open")
    return store


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except json.JSONDecodeError as exc:
        raise json_error(web.HTTPBadRequest, f"invalid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise json_error(web.HTTPBadRequest, "expected a JSON object")
    return body


def _view_json(view: IncidentView) -> dict[str, Any]:
    jobs = []
    for job in view.jobs:
        entry = asdict(job)
        del entry["incident"]
        jobs.append(entry)
    return {
        **asdict(view.incident),
        "plan_runs": [j for j in jobs if j["kind"] == "plan"],
        "deliveries": [j for j in jobs if j["kind"] == "delivery"],
        "actions": [asdict(a) for a in view.actions],
    }


async def list_incidents(request: web.Request) -> web.Response:
    status = request.query.get("status")
    try:
        limit = min(int(request.query.get("limit", "50")), 1000)
    except ValueError:
        raise json_error(web.HTTPBadRequest, "limit must be an integer") from None
    views = await _store(request).incidents(limit=limit, status=status)
    return web.json_response({"incidents": [_view_json(v) for v in views]})


async def get_incident(request: web.Request) -> web.Response:
    try:
        incident_id = int(request.match_info["id"])
    except ValueError:
        raise json_error(web.HTTPNotFound, "no such incident") from None
    views = await _store(request).incidents(limit=1, incident_id=incident_id)
    if not views:
        raise json_error(web.HTTPNotFound, "no such incident")
    return web.json_response(_view_json(views[0]))


async def automation(request: web.Request) -> web.Response:
    pauses = await _store(request).pauses()
    return web.json_response({"paused": {scope: {"reason": r, "since": at} for scope, (r, at) in pauses.items()}})


def _scope(request: web.Request, state: ReceiverState) -> str:
    name = request.match_info.get("name")
    if name is None:
        return GLOBAL
    if state.config.plan(name) is None:
        raise json_error(web.HTTPNotFound, f"no plan named {name!r}")
    return name


async def pause(request: web.Request) -> web.Response:
    scope = _scope(request, request.app[STATE])
    reason = str((await _json_body(request)).get("reason") or "paused through the admin API")
    await _store(request).pause(scope, reason[:500], time.time())
    return await automation(request)


async def resume(request: web.Request) -> web.Response:
    scope = _scope(request, request.app[STATE])
    await _store(request).resume(scope)
    return await automation(request)


async def run_plan(request: web.Request) -> web.Response:
    state = request.app[STATE]
    plan = state.config.plan(_scope(request, state))
    assert plan is not None  # _scope answered 404 otherwise
    body = await _json_body(request)
    labels = body.get("labels", {})
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise json_error(web.HTTPBadRequest, "labels must be an object of strings")
    values, problems = plan_values(plan, labels)
    if problems:
        raise json_error(web.HTTPBadRequest, "; ".join(problems))
    now = time.time()
    started = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
    job_id = await _store(request).start_manual_run(
        plan.name, {**labels, "alertname": labels.get("alertname", f"manual:{plan.name}")}, values,
        bool(body.get("dry_run", False)), uuid.uuid4().hex, now, started,
    )  # fmt: skip
    if state.worker is not None:
        state.worker.wake()
    return web.json_response({"job": job_id, "plan": plan.name, "values": values}, status=202)


async def explain_payload(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        payload = parse_payload(await request.read())
    except PayloadError as exc:
        raise json_error(web.HTTPBadRequest, str(exc)) from None
    pauses = await _store(request).pauses()
    alerts = []
    for alert in payload.alerts:
        found = explain(state.config, alert.labels)
        for plan in found.plans:
            paused = pauses.get(GLOBAL) or pauses.get(str(plan["name"]))
            plan["paused"] = paused[0] if paused else None
        alerts.append({"fingerprint": alert.fingerprint, "labels": alert.labels, **asdict(found)})
    return web.json_response({"alerts": alerts})


def add_admin_routes(app: web.Application) -> None:
    app.middlewares.append(admin_auth)
    app.router.add_get("/api/incidents", list_incidents)
    app.router.add_get("/api/incidents/{id}", get_incident)
    app.router.add_get("/api/automation", automation)
    app.router.add_post("/api/automation/pause", pause)
    app.router.add_post("/api/automation/resume", resume)
    app.router.add_post("/api/plans/{name}/pause", pause)
    app.router.add_post("/api/plans/{name}/resume", resume)
    app.router.add_post("/api/plans/{name}/run", run_plan)
    app.router.add_post("/api/explain", explain_payload)
