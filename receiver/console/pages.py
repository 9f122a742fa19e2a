"""The console's jinja2 environment: autoescaped HTML templates from ``templates/console``.

Labels, annotations and action details are data in the context, never template source, and every
printed value is HTML-escaped, so an alert cannot inject markup or script into a page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from opsloop.receiver.console.auth import SIGNED_IN

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "console"
STATIC = Path(__file__).resolve().parent.parent / "static"


def utc(at: float | None) -> str:
    return "" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    """``95`` -> ``1m 35s``; None (no data) -> a dash."""
    if seconds is None:
        return "-"
    seconds = max(0, round(seconds))  # a startsAt slightly ahead of this clock reads as 0s
    parts = [(seconds // 86400, "d"), (seconds % 86400 // 3600, "h"), (seconds % 3600 // 60, "m"), (seconds % 60, "s")]
    shown = [f"{n}{unit}" for n, unit in parts if n][:2]
    return " ".join(shown) or "0s"


def web_url(value: str) -> str:
    """``value`` when it is an http(s) URL, else "": a link from an alert never runs script (``javascript:``)."""
    return value if value.lower().startswith(("http://", "https://")) else ""


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )  # fmt: skip
    env.filters["utc"] = utc
    env.filters["duration"] = duration
    env.filters["web_url"] = web_url
    return env


ENV = web.AppKey("console_templates", jinja2.Environment)


def render(request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
    context.setdefault("session", SIGNED_IN.get())
    context.setdefault("nav", request.path.split("/")[2] if request.path.count("/") >= 2 else "")
    text = request.app[ENV].get_template(name).render(context)
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
