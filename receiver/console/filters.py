"""Filters of the incidents and stats pages, read from and written back to the URL.

Times are UTC: ``since``/``until`` as ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM``, or ``range`` (a duration
such as ``24h``) counting back from now. Everything is validated here, so the store only sees clean
values and a bad value gets a message instead of an empty page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.parse import urlencode

from opsloop.receiver.store import IncidentFilter

from opsloop.durations import parse_duration

STATUSES = ("firing", "resolved")
PAGE_SIZE = 50
DAY = 86400.0
MAX_STATS_DAYS = 366
MAX_TEXT = 200


class FilterError(ValueError):
    """A filter value that cannot be used; the message names the field."""


def parse_when(name: str, text: str) -> float:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise FilterError(f"{name}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC), got {text[:40]!r}") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def format_when(value: float | None) -> str:
    return "" if value is None else datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M")


@dataclass(frozen=True)
class PageQuery:
    """What the URL asks for: the store filter, the page and the raw ``range`` to echo back."""

    filter: IncidentFilter
    range: str = ""
    page: int = 1

    @classmethod
    def parse(cls, query: Mapping[str, str], now: float, default_range: str = "") -> PageQuery:
        """Raise FilterError naming the field when a value cannot be used."""
        text = {key: query.get(key, "").strip()[:MAX_TEXT] for key in
                ("status", "alertname", "plan", "severity", "since", "until", "range", "page")}  # fmt: skip
        if text["status"] and text["status"] not in STATUSES:
            raise FilterError(f"status: expected one of {', '.join(STATUSES)}")
        span = text["range"] or ("" if text["since"] or text["until"] else default_range)
        since = parse_when("since", text["since"]) if text["since"] else None
        until = parse_when("until", text["until"]) if text["until"] else None
        if span:
            try:
                since = now - parse_duration(span)
            except ValueError as exc:
                raise FilterError(f"range: {exc}") from None
            until = None
        if since is not None and until is not None and until <= since:
            raise FilterError("until must be after since")
        try:
            page = max(1, int(text["page"] or "1"))
        except ValueError:
            raise FilterError("page: expected a number") from None
        found = IncidentFilter(
            status=text["status"] or None, alertname=text["alertname"] or None, plan=text["plan"] or None,
            severity=text["severity"] or None, since=since, until=until,
        )  # fmt: skip
        return cls(found, span, page)

    def params(self, **override: object) -> dict[str, str]:
        """The query string of this view (for links), with ``override`` applied; empty values left out."""
        f = self.filter
        values: dict[str, object] = {
            "status": f.status, "alertname": f.alertname, "plan": f.plan, "severity": f.severity,
            "range": self.range, "since": "" if self.range else format_when(f.since),
            "until": "" if self.range else format_when(f.until), "page": self.page if self.page > 1 else "",
        }  # fmt: skip
        values.update(override)
        return {k: str(v) for k, v in values.items() if v not in (None, "")}

    def url(self, path: str, **override: object) -> str:
        params = self.params(**override)
        return f"{path}?{urlencode(params)}" if params else path

    def with_page(self, page: int) -> PageQuery:
        return replace(self, page=page)


def stats_window(query: PageQuery, now: float) -> tuple[float, float]:
    """The statistics' time range: ``until`` (default now) and ``since`` (default 30 days before it), at most
    ``MAX_STATS_DAYS`` long so the chart stays a chart."""
    until = query.filter.until or now
    since = query.filter.since if query.filter.since is not None else until - 30 * DAY
    if until - since > MAX_STATS_DAYS * DAY:
        raise FilterError(f"the range is longer than {MAX_STATS_DAYS} days")
    return since, until
