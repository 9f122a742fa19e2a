"""Admin API under ``/api/``, behind its own bearer token (``admin.token*``).

- ``GET /api/incidents[?status=firing|resolved&limit=N]`` and ``GET /api/incidents/{id}``: incidents with
  their plan runs, actions, deliveries, approvals and events. The console's filters apply too
  (``alertname``, ``plan``, ``severity``, ``since``, ``until``, ``range``, ``page``).
- ``GET /api/stats[?range=30d|since=...&until=...]``: the console's statistics as JSON.
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
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from aiohttp import web
from opsloop.receiver.console.filters import FilterError, PageQuery, stats_window
from opsloop.receiver.console.stats import compute
from opsloop.receiver.domain import IncidentView
from opsloop.receiver.handlers import STATE, json_error
from opsloop.receiver.models import PayloadError, parse_payload
from opsloop.receiver.steering import Refused, explain_alerts, pause, preview_run, resume, run_by_hand
from opsloop.receiver.store import Store, StoreUnavailable

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ACTOR = "admin API"
"""The name pauses and runs made through the admin API carry in incident timelines."""


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
        "approvals": [asdict(a) for a in view.approvals],
        "events": [asdict(e) for e in view.events],
    }


async def list_incidents(request: web.Request) -> web.Response:
    try:
        limit = min(int(request.query.get("limit", "50")), 1000)
        query = PageQuery.parse(request.query, time.time())
    except ValueError as exc:  # FilterError included
        message = str(exc) if isinstance(exc, FilterError) else "limit must be an integer"
        raise json_error(web.HTTPBadRequest, message) from None
    views = await _store(request).incidents(limit=limit, offset=(query.page - 1) * limit, filter=query.filter)
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


async def pause_or_resume(request: web.Request) -> web.Response:
    state = request.app[STATE]
    plan = request.match_info.get("name")
    try:
        if request.match_info["change"] == "pause":
            reason = str((await _json_body(request)).get("reason") or "paused through the admin API")
            await pause(_store(request), state.config, plan, reason, ACTOR)
        else:
            await resume(_store(request), state.config, plan, ACTOR)
    except Refused as exc:
        raise json_error(web.HTTPNotFound, str(exc)) from None
    return await automation(request)


async def run_plan(request: web.Request) -> web.Response:
    state = request.app[STATE]
    name = request.match_info["name"]
    if state.config.plan(name) is None:
        raise json_error(web.HTTPNotFound, f"no plan named {name!r}")
    body = await _json_body(request)
    try:
        started = await run_by_hand(
            _store(request), state.config, name, body.get("labels", {}), bool(body.get("dry_run", False)), ACTOR
        )
    except Refused as exc:
        raise json_error(web.HTTPBadRequest, str(exc)) from None
    if state.worker is not None:
        state.worker.wake()
    _, values = preview_run(state.config, name, body.get("labels", {}))
    return web.json_response(
        {"job": started.job_id, "incident": started.incident_id, "plan": name, "values": values}, status=202
    )


async def explain_payload(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        payload = parse_payload(await request.read())
    except PayloadError as exc:
        raise json_error(web.HTTPBadRequest, str(exc)) from None
    found = await explain_alerts(_store(request), state.config, [a.labels for a in payload.alerts])
    alerts = [{"fingerprint": a.fingerprint, **f} for a, f in zip(payload.alerts, found, strict=True)]
    return web.json_response({"alerts": alerts})


async def stats(request: web.Request) -> web.Response:
    now = time.time()
    try:
        since, until = stats_window(PageQuery.parse(request.query, now, default_range="30d"), now)
    except FilterError as exc:
        raise json_error(web.HTTPBadRequest, str(exc)) from None
    return web.json_response(compute(await _store(request).stats_facts(since, until), since, until).as_dict())


def add_admin_routes(app: web.Application) -> None:
    app.middlewares.append(admin_auth)
    app.router.add_get("/api/incidents", list_incidents)
    app.router.add_get("/api/incidents/{id}", get_incident)
    app.router.add_get("/api/automation", automation)
    app.router.add_post("/api/automation/{change:pause|resume}", pause_or_resume)
    app.router.add_post("/api/plans/{name}/{change:pause|resume}", pause_or_resume)
    app.router.add_post("/api/plans/{name}/run", run_plan)
    app.router.add_post("/api/explain", explain_payload)
    app.router.add_get("/api/stats", stats)
