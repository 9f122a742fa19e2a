"""The http action against a local aiohttp server that records what it received."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opsloop.receiver.actions import Action
from opsloop.testsupport.servers import free_port


class Hook:
    """Records each request; answers with the status in the ``status`` query parameter (default 200)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            {
                "method": request.method,
                "raw_path": request.raw_path,
                "query": dict(request.query),
                "service": request.match_info.get("service"),
                "headers": dict(request.headers),
                "body": await request.text(),
            }
        )
        if request.path == "/slow":
            await asyncio.sleep(5)
        if request.path == "/moved":
            raise web.HTTPFound("/elsewhere")
        return web.Response(status=int(request.query.get("status", "200")), text="restart refused: replica busy\n")


@pytest.fixture
async def hook(aiohttp_server: Callable[..., Any]) -> tuple[Hook, TestServer]:
    recorder = Hook()
    app = web.Application()
    app.router.add_route("*", "/restart/{service}", recorder.handle)
    app.router.add_route("*", "/{path:.*}", recorder.handle)
    server = await aiohttp_server(app)
    return recorder, server


def base(server: TestServer) -> str:
    return f"http://127.0.0.1:{server.port}"


async def test_values_are_url_quoted_and_the_body_filled(
    hook: tuple[Hook, TestServer], make_action: Callable[..., Action]
) -> None:
    recorder, server = hook
    action = make_action(
        type="http",
        url=base(server) + "/restart/{service}?reason={reason}",
        body={"service": "{service}", "replicas": 2, "labels": ["{reason}"]},
    )
    result = await action.run({"service": "web/../admin", "reason": "a&b=c {{ 7*7 }}"})
    assert result.ok, result.detail
    assert result.detail == f"POST {base(server)}/restart/web%2F%2E%2E%2Fadmin?… -> 200"
    [seen] = recorder.requests
    assert seen["raw_path"].startswith("/restart/web%2F%2E%2E%2Fadmin?reason=a%26b%3Dc%20")
    assert (seen["service"], seen["query"]) == ("web/../admin", {"reason": "a&b=c {{ 7*7 }}"})
    assert json.loads(seen["body"]) == {"service": "web/../admin", "replicas": 2, "labels": ["a&b=c {{ 7*7 }}"]}


async def test_headers_come_from_config_environment_and_files(
    hook: tuple[Hook, TestServer],
    make_action: Callable[..., Action],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder, server = hook
    monkeypatch.setenv("OPSLOOP_TEST_HOOK_TOKEN", "Bearer env-token")
    (tmp_path / "key").write_text("file-key\n")
    action = make_action(
        type="http",
        method="PUT",
        url=base(server) + "/scale",
        headers={
            "X-Plain": "plain",
            "Authorization": {"value_env": "OPSLOOP_TEST_HOOK_TOKEN"},
            "X-Api-Key": {"value_file": str(tmp_path / "key")},
        },
    )
    assert (await action.run({})).ok
    headers = recorder.requests[0]["headers"]
    assert (headers["X-Plain"], headers["Authorization"], headers["X-Api-Key"]) == (
        "plain",
        "Bearer env-token",
        "file-key",
    )
    assert recorder.requests[0]["method"] == "PUT"


@pytest.mark.parametrize(
    ("path", "expect", "detail"),
    [
        ("/hook?status=500", None, "-> 500 (expected 2xx): restart refused: replica busy"),
        ("/hook?status=200", [202], "-> 200 (expected 202): restart refused: replica busy"),
        ("/moved", None, "-> 302 (expected 2xx)"),
    ],
)
async def test_an_unexpected_status_fails_with_the_answer(
    hook: tuple[Hook, TestServer], make_action: Callable[..., Action], path: str, expect: Any, detail: str
) -> None:
    recorder, server = hook
    result = await make_action(type="http", url=base(server) + path, expect_status=expect).run({})
    assert not result.ok
    assert detail in result.detail
    assert len(recorder.requests) == 1  # a redirect is not followed


async def test_expect_status_accepts_listed_codes(
    hook: tuple[Hook, TestServer], make_action: Callable[..., Action]
) -> None:
    _, server = hook
    result = await make_action(type="http", url=base(server) + "/hook?status=409", expect_status=[200, 409]).run({})
    assert (result.ok, result.detail) == (True, f"POST {base(server)}/hook?… -> 409")


async def test_a_slow_hook_is_cut_at_the_timeout(
    hook: tuple[Hook, TestServer], make_action: Callable[..., Action]
) -> None:
    _, server = hook
    started = time.monotonic()
    result = await make_action(type="http", url=base(server) + "/slow", timeout="300ms").run({})
    assert (result.ok, result.detail) == (False, "timed out after 0.3s")
    assert time.monotonic() - started < 2


async def test_a_closed_port_is_a_failed_result(make_action: Callable[..., Action]) -> None:
    result = await make_action(type="http", url=f"http://127.0.0.1:{free_port()}/x").run({})
    assert not result.ok
    assert result.detail.startswith("ClientConnectorError")


async def test_dry_run_sends_nothing_and_never_shows_secrets(
    hook: tuple[Hook, TestServer], make_action: Callable[..., Action]
) -> None:
    recorder, server = hook
    action = make_action(
        type="http",
        url=base(server) + "/restart/{service}?token=hunter2",
        headers={"Authorization": {"value": "Bearer hunter2"}},
        body={"service": "{service}"},
    )
    result = await action.run({"service": "emails"}, dry_run=True)
    assert result.dry_run
    assert result.detail == (
        f"would send POST {base(server)}/restart/emails?… with headers Authorization"
        ' and JSON body {"service": "emails"}'
    )
    assert recorder.requests == []


@pytest.mark.parametrize("value", [".", "..", "...", "a.b"])
async def test_a_dot_value_stays_one_path_segment(
    hook: tuple[Hook, TestServer], make_action: Callable[..., Action], value: str
) -> None:
    recorder, server = hook
    # Without encoding dots, yarl would resolve /api/services/../restart to /api/restart.
    action = make_action(type="http", url=base(server) + "/api/services/{service}/restart?v={service}")
    result = await action.run({"service": value})
    assert result.ok, result.detail
    [seen] = recorder.requests
    encoded = value.replace(".", "%2E")
    assert seen["raw_path"] == f"/api/services/{encoded}/restart?v={encoded}"
    assert seen["query"] == {"v": value}


async def test_literal_url_text_is_still_encoded_when_sent(
    hook: tuple[Hook, TestServer], make_action: Callable[..., Action]
) -> None:
    recorder, server = hook
    action = make_action(type="http", url=base(server) + "/hooks/ré start/{{x}}/{service}?a=b c")
    assert (await action.run({"service": "web"})).ok
    assert recorder.requests[0]["raw_path"] == "/hooks/r%C3%A9%20start/%7Bx%7D/web?a=b%20c"


async def test_userinfo_in_the_url_is_never_shown(
    hook: tuple[Hook, TestServer], make_action: Callable[..., Action]
) -> None:
    recorder, server = hook
    url = f"http://deploy:tok3n@127.0.0.1:{server.port}/restart/{{service}}?status=500"
    action = make_action(type="http", url=url)
    failed = await action.run({"service": "web"})
    dry = await action.run({"service": "web"}, dry_run=True)
    assert failed.detail.startswith(f"POST {base(server)}/restart/web?… -> 500")
    assert dry.detail == f"would send POST {base(server)}/restart/web?…"
    for result in (failed, dry):
        assert "tok3n" not in result.detail
        assert "deploy" not in result.detail
    assert recorder.requests[0]["headers"]["Authorization"].startswith("Basic ")  # still sent, just not shown
