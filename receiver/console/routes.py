"""Console pages under ``/ui/``: sign-in, incidents, an incident's timeline with approvals, automation,
explain and statistics. Handlers read through the store operations the admin API uses and change
state only through ``receiver.steering`` and the store's approval decision.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import secrets
import time

from aiohttp import web
from opsloop.receiver.console import charts
from opsloop.receiver.console.auth import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Authenticator,
    client_address,
    current,
    safe_next,
    set_cookie,
)
from opsloop.receiver.console.filters import PAGE_SIZE, FilterError, PageQuery, stats_window
from opsloop.receiver.console.guard import AUTHENTICATOR, console_guard
from opsloop.receiver.console.pages import ENV, STATIC, environment, render
from opsloop.receiver.console.stats import compute
from opsloop.receiver.console.views import firing_for, key_labels, pending_approval, plan_states, timeline
from opsloop.receiver.domain import APPROVED, PLAN, REJECTED, IncidentView
from opsloop.receiver.handlers import CONSOLE_ROUTE, STATE, ReceiverState
from opsloop.receiver.models import PayloadError, parse_payload
from opsloop.receiver.steering import Refused, check_labels, explain_alerts, pause, preview_run, resume, run_by_hand
from opsloop.receiver.store import Store, StoreUnavailable

log = logging.getLogger(__name__)


def _state(request: web.Request) -> tuple[ReceiverState, Store]:
    state = request.app[STATE]
    if state.store is None:
        raise StoreUnavailable("store not open")
    return state, state.store


NOTICE = re.compile(
    r"(all plans|[A-Za-z0-9_.-]{1,64}) (paused|resumed|was not paused)|stage [0-9]{1,3} (approved|rejected)"
    r"|already decided \(or timed out\) before your answer arrived"
)
"""The only notices a redirect may ask a page to show, so a crafted link cannot put words on a page."""


def _notice(request: web.Request) -> str:
    text = request.query.get("msg", "")
    return text if NOTICE.fullmatch(text) else ""


def _secure(request: web.Request) -> bool:
    url = request.app[STATE].config.console.external_url
    return bool(url and url.startswith("https://"))


# -- sign-in --------------------------------------------------------------------------------------


async def login_page(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    auth = request.app[AUTHENTICATOR]
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html.j2", status=status, error=error, login_token=token,
                      next=safe_next(request.query.get("next") or None), token_sign_in=auth.token_sign_in)  # fmt: skip
    set_cookie(response, request, LOGIN_COOKIE, token, 3600, _secure(request))
    return response


async def login(request: web.Request) -> web.StreamResponse:
    auth = request.app[AUTHENTICATOR]
    form = await request.post()
    client, now = client_address(request), time.time()
    wait = auth.limiter.blocked_for(client, now)
    if wait > 0:
        log.warning("console sign-in refused: too many failures", extra={"client": client})
        response = await login_page(request, f"Too many failed sign-ins; try again in {math.ceil(wait)} s.", 429)
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not secrets.compare_digest(cookie.encode(), str(form.get(CSRF_FIELD, "")).encode()):
        raise web.HTTPForbidden(text="The sign-in form expired or was not sent by this browser: reload it.\n")
    name = str(form.get("name", "")).strip()[:64]
    # PBKDF2 takes a good fraction of a second by design: keep it off the event loop (webhooks keep flowing).
    who = await asyncio.to_thread(auth.identify, name, str(form.get("secret", "")))
    if who is None:
        auth.limiter.failed(client, now)
        log.warning("console sign-in failed", extra={"client": client, "user": name})
        return await login_page(request, "Wrong name or password/token.", 401)
    auth.limiter.succeeded(client)
    _, store = _state(request)
    session = await auth.start(store, who, now)
    log.info("console sign-in", extra={"client": client, "session_name": who})
    response = web.HTTPSeeOther(safe_next(str(form.get("next", "")) or None))
    set_cookie(response, request, SESSION_COOKIE, session.id, auth.config.session_ttl, _secure(request))
    response.del_cookie(LOGIN_COOKIE, path="/ui/")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    _, store = _state(request)
    session = current()
    await request.app[AUTHENTICATOR].end(store, session)
    log.info("console sign-out", extra={"session_name": session.name})
    response = web.HTTPSeeOther("/ui/login")
    response.del_cookie(SESSION_COOKIE, path="/ui/")
    raise response


# -- incidents ------------------------------------------------------------------------------------


async def incidents(request: web.Request) -> web.Response:
    state, store = _state(request)
    try:
        query = PageQuery.parse(request.query, time.time())
    except FilterError as exc:
        return render(request, "incidents.html.j2", status=400, error=str(exc), query=PageQuery.parse({}, 0),
                      rows=[], total=0, pages=1, plans=[p.name for p in state.config.recovery],
                      refresh=state.config.console.refresh_interval)  # fmt: skip
    total = await store.count_incidents(query.filter)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    views = await store.incidents(limit=PAGE_SIZE, offset=(query.page - 1) * PAGE_SIZE, filter=query.filter)
    now = time.time()
    rows = [{"view": v, "key_labels": key_labels(v.incident.labels), "plans": plan_states(v), "age": firing_for(v, now)}
            for v in views]  # fmt: skip
    plans = [p.name for p in state.config.recovery]
    return render(request, "incidents.html.j2", error="", query=query, rows=rows, total=total, pages=pages,
                  plans=plans, refresh=state.config.console.refresh_interval)  # fmt: skip


async def _view(request: web.Request) -> IncidentView:
    _, store = _state(request)
    try:
        incident_id = int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound(text="No such incident.\n") from None
    views = await store.incidents(limit=1, incident_id=incident_id)
    if not views:
        raise web.HTTPNotFound(text="No such incident.\n")
    return views[0]


async def incident(request: web.Request) -> web.Response:
    state, _ = _state(request)
    view = await _view(request)
    waiting = [(job, pending_approval(view, job)) for job in view.jobs if job.kind == PLAN]
    return render(request, "incident.html.j2", view=view, entries=timeline(view), plans=plan_states(view),
                  waiting=[(job, a) for job, a in waiting if a is not None], message=_notice(request),
                  refresh=state.config.console.refresh_interval)  # fmt: skip


async def decide(request: web.Request) -> web.StreamResponse:
    _, store = _state(request)
    view = await _view(request)
    form = await request.post()
    decision = APPROVED if request.match_info["decision"] == "approve" else REJECTED
    try:
        job_id, stage = int(str(form.get("job", ""))), int(str(form.get("stage", "")))
    except ValueError:
        raise web.HTTPBadRequest(text="job and stage must be numbers\n") from None
    if not any(j.id == job_id for j in view.jobs):
        raise web.HTTPNotFound(text="No such plan run on this incident.\n")
    who = current().name
    won = await store.decide_approval(job_id, stage, decision, who, str(form.get("reason", ""))[:500], time.time())
    if won and (worker := request.app[STATE].worker) is not None:
        worker.wake()
    msg = f"stage {stage + 1} {decision}" if won else "already decided (or timed out) before your answer arrived"
    raise web.HTTPSeeOther(f"/ui/incidents/{view.incident.id}?msg={msg.replace(' ', '+')}")


# -- automation -----------------------------------------------------------------------------------


async def automation(request: web.Request, error: str = "", status: int = 200, **extra: object) -> web.Response:
    state, store = _state(request)
    return render(request, "automation.html.j2", status=status, pauses=await store.pauses(),
                  plans=state.config.recovery, error=error, message=_notice(request),
                  **{"preview": None, "form": {}, **extra})  # fmt: skip


async def change_pause(request: web.Request) -> web.StreamResponse:
    state, store = _state(request)
    form = await request.post()
    plan = str(form.get("plan", "")) or None
    who = current().name
    try:
        if request.match_info["change"] == "pause":
            await pause(store, state.config, plan, str(form.get("reason", "")), who)
            msg = "paused"
        else:
            msg = "resumed" if await resume(store, state.config, plan, who) else "was not paused"
    except Refused as exc:
        return await automation(request, str(exc), 400)
    raise web.HTTPSeeOther(f"/ui/automation?msg={(plan or 'all+plans')}+{msg}")


def _labels(text: str) -> dict[str, str]:
    """A JSON object, or one ``name=value`` per line."""
    text = text.strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise Refused(f"labels: invalid JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise Refused("labels: expected a JSON object")
        return parsed
    labels = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise Refused(f"labels line {number}: expected name=value")
        labels[name.strip()] = value.strip().strip('"')
    return labels


async def run(request: web.Request) -> web.StreamResponse:
    state, store = _state(request)
    form = await request.post()
    plan, dry_run = str(form.get("plan", "")), form.get("dry_run") == "on"
    entered = {"plan": plan, "labels": str(form.get("labels", "")), "dry_run": dry_run}
    try:
        labels = _labels(entered["labels"])
        checked, values = preview_run(state.config, plan, labels)
        if form.get("confirm") != "yes":
            return await automation(request, form=entered, preview={"plan": plan, "labels": checked,
                                    "values": values, "dry_run": dry_run})  # fmt: skip
        started = await run_by_hand(store, state.config, plan, labels, dry_run, current().name)
    except Refused as exc:
        return await automation(request, str(exc), 400, form=entered)
    if state.worker is not None:
        state.worker.wake()
    raise web.HTTPSeeOther(f"/ui/incidents/{started.incident_id}")


# -- explain and stats ----------------------------------------------------------------------------


async def explain_page(request: web.Request) -> web.Response:
    state, store = _state(request)
    if request.method == "GET":
        return render(request, "explain.html.j2", text="", results=[], error="")
    text = str((await request.post()).get("input", ""))[: state.config.limits.max_body_bytes]
    try:
        labels = _labels(text)
        if "alerts" in labels:  # a whole webhook payload
            alerts = [a.labels for a in parse_payload(text.encode()).alerts]
        else:
            alerts = [check_labels(labels)]
        results = await explain_alerts(store, state.config, alerts)
    except (PayloadError, Refused) as exc:
        return render(request, "explain.html.j2", status=400, text=text, results=[], error=str(exc))
    return render(request, "explain.html.j2", text=text, results=results, error="")


async def stats_page(request: web.Request) -> web.Response:
    _, store = _state(request)
    now = time.time()
    try:
        query = PageQuery.parse(request.query, now, default_range="30d")
        since, until = stats_window(query, now)
    except FilterError as exc:
        return render(request, "stats.html.j2", status=400, error=str(exc), stats=None, chart="",
                      query=PageQuery.parse({}, now, "30d"))  # fmt: skip
    stats = compute(await store.stats_facts(since, until), since, until)
    return render(request, "stats.html.j2", error="", stats=stats, chart=charts.incidents_per_day(stats.days),
                  query=query)  # fmt: skip


def add_console(app: web.Application, authenticator: Authenticator) -> None:
    """Serve the console when someone can sign in to it (the admin token or ``console.users``)."""
    if not authenticator.enabled:
        return
    app[AUTHENTICATOR] = authenticator
    app[ENV] = environment()
    app.middlewares.append(console_guard)
    app.router.add_static("/ui/static/", STATIC, append_version=False)
    app.router.add_get("/ui/login", login_page, name=CONSOLE_ROUTE)
    app.router.add_post("/ui/login", login)
    app.router.add_post("/ui/logout", logout)
    app.router.add_get("/ui/incidents", incidents)
    app.router.add_get("/ui/incidents/{id}", incident)
    app.router.add_post("/ui/incidents/{id}/{decision:approve|reject}", decide)
    app.router.add_get("/ui/automation", automation)
    app.router.add_post("/ui/automation/{change:pause|resume}", change_pause)
    app.router.add_post("/ui/automation/run", run)
    app.router.add_get("/ui/explain", explain_page)
    app.router.add_post("/ui/explain", explain_page)
    app.router.add_get("/ui/stats", stats_page)
