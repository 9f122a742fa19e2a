"""``http``: call a restart, scale or failover hook and check the answer's status.

Label values are percent-encoded into the URL, dots included, and the URL is sent exactly as built
(``encoded=True``): a value cannot add path segments, a query or another host, and a value ``..`` is not
turned into a dot segment that yarl would normalise away. Values are inserted as plain strings into the
JSON body. Header values come from config or secrets and are never logged; the result shows the URL
without its userinfo and query, which may carry credentials or a token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import ClassVar
from urllib.parse import quote, urlsplit

import aiohttp
import yarl
from opsloop.receiver.actions.base import ActionResult, BaseAction, Progress
from opsloop.receiver.actions.config import HttpConfig
from opsloop.receiver.actions.placeholders import fill
from pydantic import JsonValue

_BODY_SNIPPET = 200
# Characters a URL may carry as they are (reserved, unreserved, and "%" of escapes the config author wrote).
_URL_SAFE = "!#$%&'()*+,/:;=?@[]"


def quote_value(value: str) -> str:
    """Percent-encode every character but letters, digits, ``-``, ``_`` and ``~``.

    Dots are encoded too (``.`` -> ``%2E``): a value ``.`` or ``..`` must stay one path segment instead of
    becoming a dot segment that URL normalisation resolves (``/services/../restart`` -> ``/restart``).
    """
    return quote(value, safe="").replace(".", "%2E")


def request_url(filled: str) -> yarl.URL:
    """The URL to send, built so that no normalisation undoes the values' encoding.

    The origin goes through yarl as usual (IDNA hosts, default ports); the rest is sent as is (``encoded=True``)
    after encoding what the config's literal text may hold but a URL may not (spaces, braces, non-ASCII).
    Values are already fully encoded and pass through unchanged.
    """
    parts = urlsplit(filled)
    origin = f"{parts.scheme}://{parts.netloc}"
    rest = quote(filled[len(origin) :], safe=_URL_SAFE)
    return yarl.URL(str(yarl.URL(origin)).rstrip("/") + rest, encoded=True)


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
    """The URL for history and logs: scheme, host[:port] and path.

    Userinfo (``user:token@``) is dropped and a query is shown as ``?…``: both may hold credentials.
    """
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}" + ("?…" if parts.query else "")


class HttpAction(BaseAction[HttpConfig]):
    type = "http"
    failures: ClassVar[tuple[type[Exception], ...]] = (aiohttp.ClientError, OSError)

    def __init__(self, config: HttpConfig) -> None:
        super().__init__(config)
        self._headers = {
            name: value if isinstance(value, str) else value.secret("value") or ""
            for name, value in config.headers.items()
        }

    async def _run(self, values: Mapping[str, str], dry_run: bool, progress: Progress) -> ActionResult:
        cfg = self.config
        url = fill(cfg.url, values, quote=quote_value)
        body = fill_json(cfg.body, values)
        request = f"{cfg.method} {shown_url(url)}"
        if dry_run:
            headers = f" with headers {', '.join(self._headers)}" if self._headers else ""
            payload = f" and JSON body {json.dumps(body)}" if body is not None else ""
            return ActionResult(True, f"would send {request}{headers}{payload}", True)
        target = request_url(url)
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=cfg.timeout)) as session,
            session.request(cfg.method, target, headers=self._headers, json=body, allow_redirects=False) as response,
        ):
            snippet = (await response.content.read(_BODY_SNIPPET * 4)).decode(errors="replace")
        ok = response.status in cfg.expect_status if cfg.expect_status else 200 <= response.status < 300
        detail = f"{request} -> {response.status}"
        if not ok:
            detail += f" (expected {_expected(cfg.expect_status)}): {' '.join(snippet.split())[:_BODY_SNIPPET]}"
        return ActionResult(ok, detail)


def _expected(statuses: list[int] | None) -> str:
    return ", ".join(map(str, statuses)) if statuses else "2xx"
