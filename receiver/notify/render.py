"""Sandboxed jinja2 rendering of notifications, with a plain built-in fallback when a template fails.

Alert labels and annotations are context *data*, never template source, so a label value such as
``{{ 7*7 }}`` is printed as written. Templates (built-in or user files) run in an immutable sandbox with
strict undefined names; HTML output is autoescaped and Slack mrkdwn output escapes ``&``, ``<`` and
``>`` in every printed value. A template that raises is counted and replaced by the fallback text, so a
broken template degrades a message instead of losing it.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from opsloop.receiver.notify.base import KIND_TITLES, Notification
from prometheus_client import Counter

Flavor = Literal["text", "html", "mrkdwn"]

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "templates"

log = logging.getLogger(__name__)


class TemplateConfigError(ValueError):
    """Configured templates that cannot be read or compiled (reported at startup, not at send time).

    ``problems`` holds (config key, message) for each: the key names the template in the notifier's
    entry (``templates.text``, ``subject``), or is None for a built-in one replaced via ``templates_dir``.
    """

    def __init__(self, problems: list[tuple[str | None, str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


def load_templates(**loaders: Callable[[], MessageTemplate]) -> dict[str, MessageTemplate]:
    """Every template of one notifier by name, or one TemplateConfigError naming each that fails."""
    loaded: dict[str, MessageTemplate] = {}
    problems: list[tuple[str | None, str]] = []
    for name, load in loaders.items():
        try:
            loaded[name] = load()
        except TemplateConfigError as exc:
            problems += exc.problems
    if problems:
        raise TemplateConfigError(problems)
    return loaded


def mrkdwn_escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn gives meaning to; everything else is literal."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def format_time(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _mrkdwn_finalize(value: object) -> str:
    return mrkdwn_escape("" if value is None else str(value))


def environment(flavor: Flavor, templates_dir: Path | None = None) -> ImmutableSandboxedEnvironment:
    """A sandbox whose loader looks in ``templates_dir`` first, then in the built-in templates."""
    search = [templates_dir, BUILTIN_DIR] if templates_dir else [BUILTIN_DIR]
    env = ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader(search),
        autoescape=flavor == "html",
        undefined=jinja2.StrictUndefined,
        finalize=_mrkdwn_finalize if flavor == "mrkdwn" else None,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ts"] = format_time
    return env


SEVERITY_MARKS = {"critical": ("🔴", "#d93025"), "warning": ("🟠", "#e37400"), "info": ("🔵", "#1a73e8")}
SETTLED_MARK = ("✅", "#188038")
UNKNOWN_MARK = ("⚪", "#5f6368")
LINK_ANNOTATIONS = (("runbook_url", "Runbook"), ("dashboard_url", "Dashboard"), ("dashboard", "Dashboard"))
"""Annotations shown as links, in order; ``dashboard`` is what opsloop's own rules carry."""


def glance(n: Notification) -> dict[str, str]:
    """Severity at a glance: the same words everywhere, with an emoji (Slack) and a colour (HTML band)."""
    severity = n.incident.labels.get("severity", "")
    settled = n.kind in ("resolved", "recovered")
    emoji, color = SETTLED_MARK if settled else SEVERITY_MARKS.get(severity, UNKNOWN_MARK)
    title = KIND_TITLES[n.kind]
    if n.kind == "automation_paused" or not severity:
        words = title
    else:
        words = f"{title} · was {severity}" if settled else f"{severity.upper()} · {title}"
    return {"words": words, "emoji": emoji, "color": color}


def links(n: Notification) -> list[tuple[str, str]]:
    """The alert's runbook and dashboard links; only http(s) URLs, so no other scheme reaches a message."""
    found: dict[str, str] = {}
    for key, title in LINK_ANNOTATIONS:
        url = n.incident.annotations.get(key, "").strip()
        if url.startswith(("https://", "http://")) and title not in found:
            found[title] = url
    return list(found.items())


def context(n: Notification) -> dict[str, Any]:
    """The names a template can use (documented in docs/notifications.md)."""
    return {
        "glance": glance(n),
        "links": links(n),
        "kind": n.kind,
        "kind_title": KIND_TITLES[n.kind],
        "status": n.status,
        "alertname": n.incident.alertname,
        "labels": dict(n.incident.labels),
        "annotations": dict(n.incident.annotations),
        "starts_at": n.starts_at,
        "ends_at": n.ends_at,
        "fingerprint": n.incident.fingerprint,
        "generator_url": n.incident.generator_url,
        "external_url": n.incident.external_url,
        "truncated_alerts": n.incident.truncated_alerts,
        "history": list(n.history),
        "note": n.note,
        "maybe_repeat": n.maybe_repeat,
        "automation": list(n.automation),
    }


def fallback_title(n: Notification) -> str:
    return n.incident.alertname


def fallback_text(n: Notification) -> str:
    """The message without any template: every fact, plainly, in a fixed order."""
    incident = n.incident
    lines = [f"{KIND_TITLES[n.kind]}: {incident.alertname} (status {n.status}, since {format_time(n.starts_at)})"]
    if n.note:
        lines.append(n.note)
    lines += [f"Automation: {line}" for line in n.automation]
    lines += [f"{key}: {value}" for key, value in sorted(incident.annotations.items())]
    lines.append("Labels:")
    lines += [f"  {key} = {value}" for key, value in sorted(incident.labels.items())]
    if n.history:
        lines.append("Recovery history:")
        lines += [
            f"  {format_time(h.at)} {h.plan} stage {h.stage} {h.action}: {h.result} - {h.detail}" for h in n.history
        ]
    if incident.truncated_alerts > 0:
        lines.append(f"{incident.truncated_alerts} more alerts of this group were truncated by Alertmanager.")
    lines += [f"Source: {incident.generator_url}"] if incident.generator_url else []
    return "\n".join(lines)


def fallback_body(flavor: Flavor, n: Notification) -> str:
    text = fallback_text(n)
    if flavor == "html":
        return f"<pre>{html.escape(text)}</pre>"
    if flavor == "mrkdwn":
        return mrkdwn_escape(text)
    return text


@dataclass(frozen=True)
class MessageTemplate:
    """One compiled template of one notifier (its title, text or HTML part) and its fallback."""

    notifier: str
    part: str
    template: jinja2.Template
    fallback: Callable[[Notification], str]
    one_line: bool = False
    failures: Counter | None = None
    """The app's ``opsloop_receiver_template_failures_total`` (labelled by notifier), when counted."""

    def render(self, n: Notification) -> str:
        try:
            text = self.template.render(context(n))
            if not text.strip():
                raise ValueError("the template rendered nothing")
        except Exception as exc:
            if self.failures is not None:
                self.failures.labels(notifier=self.notifier).inc()
            log.warning(
                "template failed, using the fallback text",
                extra={"notifier": self.notifier, "part": self.part, "error": f"{type(exc).__name__}: {exc}"},
            )
            text = self.fallback(n)
        return " ".join(text.split()) if self.one_line else text.strip("\n")


def load_template(
    notifier: str,
    part: str,
    flavor: Flavor,
    *,
    default: str,
    path: Path | None = None,
    source: str | None = None,
    templates_dir: Path | None = None,
    failures: Counter | None = None,
    key: str | None = None,
) -> MessageTemplate:
    """Compile the user's template (a file ``path`` or inline ``source``) or else the default by name.

    ``part == "title"`` renders one line (subjects and headers); other parts are message bodies. ``key``
    is the config key the user set the template with (default ``templates.<part>``), for errors.
    """
    env = environment(flavor, templates_dir)
    setting = (key or f"templates.{part}") if path is not None or source is not None else None
    try:
        if path is not None:
            source = path.read_text()
        template = env.get_template(default) if source is None else env.from_string(source)
    except OSError as exc:
        raise TemplateConfigError([(setting, f"cannot read template {path}: {exc.strerror}")]) from exc
    except jinja2.TemplateError as exc:
        what = f"template {path or default}" if path is not None or source is None else "inline template"
        raise TemplateConfigError([(setting, f"{what} does not compile: {exc}")]) from exc
    is_title = part == "title"
    fallback = fallback_title if is_title else partial(fallback_body, flavor)
    return MessageTemplate(notifier, part, template, fallback, one_line=is_title, failures=failures)
