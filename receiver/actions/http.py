"""``http``: call a restart, scale or failover hook and check the answer's status.

Label values are percent-encoded into the URL (a value cannot add path segments, a query or another
host) and inserted as plain strings into the JSON body. Header values come from config or secrets and
are never logged; the result shows the URL without its query, which may carry a token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import partial
from typing import ClassVar
from urllib.parse import quote, urlsplit

import aiohttp
from pydantic import JsonValue

from receiver.actions.base import ActionResult, BaseAction, Progress
from receiver.actions.config import HttpConfig, resolve_secret
from receiver.actions.placeholders import fill

_BODY_SNIPPET = 200
_quote_all = partial(quote, safe="")


def fill_json(value: JsonValue, values: Mapping[str, str]) -> JsonValue:
    """The body with every string value filled in; keys, numbers and booleans stay as written."""
    if isinstance(value, str):
        return fill(value, values)
    if isinstance(value, list):
        return [fill_json(item, values) for item in value]
    if isinstance(value, dict):
        return {key: fill_json(item, values) for key, item in value.items()}
    return value


def shown_url(url: str) -> str:
    """The URL for history and logs: scheme, host and path, without a query that may hold a token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?…" if parts.query else "")


class HttpAction(BaseAction[HttpConfig]):
    type = "http"
    failures: ClassVar[tuple[type[Exception], ...]] = (aiohttp.ClientError, OSError)

    def __init__(self, config: HttpConfig) -> None:
        super().__init__(config)
        self._headers = {
            name: value if isinstance(value, str) else resolve_secret(value, "value") or ""
            for name, value in config.headers.items()
        }

    async def _run(self, values: Mapping[str, str], dry_run: bool, progress: Progress) -> ActionResult:
        cfg = self.config
        url = fill(cfg.url, values, quote=_quote_all)
        body = fill_json(cfg.body, values)
        request = f"{cfg.method} {shown_url(url)}"
        if dry_run:
            headers = f" with headers {', '.join(self._headers)}" if self._headers else ""
            payload = f" and JSON body {json.dumps(body)}" if body is not None else ""
            return ActionResult(True, f"would send {request}{headers}{payload}", True)
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=cfg.timeout)) as session,
            session.request(cfg.method, url, headers=self._headers, json=body, allow_redirects=False) as response,
        ):
            snippet = (await response.content.read(_BODY_SNIPPET * 4)).decode(errors="replace")
        ok = response.status in cfg.expect_status if cfg.expect_status else 200 <= response.status < 300
        detail = f"{request} -> {response.status}"
        if not ok:
            detail += f" (expected {_expected(cfg.expect_status)}): {' '.join(snippet.split())[:_BODY_SNIPPET]}"
        return ActionResult(ok, detail)


def _expected(statuses: list[int] | None) -> str:
    return ", ".join(map(str, statuses)) if statuses else "2xx"
