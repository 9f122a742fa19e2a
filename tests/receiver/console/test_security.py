"""Console safety over plain HTTP: sessions, cookies, CSRF, headers, escaping, rate limits, no secrets."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from opsloop.receiver.config import load_config
from opsloop.receiver.console.passwords import check_password, hash_password

from opsloop.configfile import ConfigError
from tests.receiver.console.conftest import Client
from tests.receiver.harness import ADMIN_TOKEN, TOKEN, Receiver, alert, webhook, write_config

Start = Callable[[Path], Awaitable[Receiver]]
PLAN = {"name": "fix", "match": {"alertname": "Broken"}, "actions": [{"type": "command", "argv": ["true"]}]}


async def start(tmp_path: Path, receivers: Start, **sections: object) -> Receiver:
    return await receivers(write_config(tmp_path, recovery=[PLAN], **sections))


async def test_pages_need_a_session_and_redirect_to_sign_in(tmp_path: Path, receivers: Start) -> None:
    client = Client(await start(tmp_path, receivers))
    for path in ("/ui/incidents?status=firing", "/ui/incidents/1", "/ui/automation", "/ui/explain", "/ui/stats"):
        status, headers, _, _ = await client.request("GET", path)
        assert status == 303
        assert headers["Location"].startswith("/ui/login?next=/ui/")
    status, headers, _, _ = await client.request("GET", "/ui/")
    assert (status, headers["Location"]) == (303, "/ui/incidents")


async def test_session_cookie_flags_and_sign_out(tmp_path: Path, receivers: Start) -> None:
    client = Client(await start(tmp_path, receivers, console={"session_ttl": "2h"}))
    _, _, page, _ = await client.request("GET", "/ui/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token
    status, headers, _, cookies = await client.request(
        "POST", "/ui/login", {"csrf": token.group(1), "name": "eve", "secret": ADMIN_TOKEN, "next": "//evil.example"}
    )
    assert (status, headers["Location"]) == (303, "/ui/incidents")  # no open redirect
    (session,) = [c for c in cookies if c.startswith("opsloop_session=")]
    assert "HttpOnly" in session
    assert "SameSite=Strict" in session
    assert "Path=/ui/" in session
    assert "Max-Age=7200" in session
    assert "Secure" not in session  # plain HTTP here
    assert (await client.request("GET", "/ui/incidents"))[0] == 200
    stolen = dict(client.cookies)
    status, _, _, _ = await client.request("POST", "/ui/logout", {"csrf": await client.csrf()})
    assert status == 303
    client.cookies = stolen  # the old cookie no longer works anywhere: the store forgot the session
    assert (await client.request("GET", "/ui/incidents"))[0] == 303


async def test_cookie_is_secure_when_the_console_is_served_over_tls(tmp_path: Path, receivers: Start) -> None:
    client = Client(await start(tmp_path, receivers, console={"external_url": "https://console.example.com"}))
    _, _, _, cookies = await client.request("GET", "/ui/login")
    assert cookies
    assert all("Secure" in c for c in cookies)


async def test_state_changes_need_this_sessions_csrf_token(tmp_path: Path, receivers: Start) -> None:
    receiver = await start(tmp_path, receivers)
    alice, mallory = Client(receiver), Client(receiver)
    assert await alice.sign_in("alice") == 303
    assert await mallory.sign_in("mallory") == 303
    others = await mallory.csrf()
    for form in ({"reason": "x"}, {"reason": "x", "csrf": ""}, {"reason": "x", "csrf": others}):
        status, _, body, _ = await alice.request("POST", "/ui/automation/pause", form)
        assert status == 403, form
        assert "CSRF" in body
    assert await receiver.store.pauses() == {}  # nothing changed
    status, _, _, _ = await alice.request("POST", "/ui/automation/pause", {"reason": "x", "csrf": await alice.csrf()})
    assert status == 303
    assert (await receiver.store.pauses())["*"][0] == "x"
    # The sign-in form is protected too (double-submit cookie): a cross-site post has no cookie.
    status, _, _, _ = await Client(receiver).request("POST", "/ui/login", {"name": "a", "secret": ADMIN_TOKEN})
    assert status == 403


async def test_headers_on_every_page(tmp_path: Path, receivers: Start) -> None:
    client = Client(await start(tmp_path, receivers))
    await client.sign_in()
    for path in ("/ui/login", "/ui/incidents", "/ui/automation", "/ui/explain", "/ui/stats", "/ui/incidents/999"):
        _, headers, _, _ = await client.request("GET", path)
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, css, _ = await client.request("GET", "/ui/static/console.css")
    assert status == 200
    assert headers["Content-Type"].startswith("text/css")
    assert "svg.chart" in css


async def test_labels_are_escaped_everywhere(tmp_path: Path, receivers: Start) -> None:
    receiver = await start(tmp_path, receivers)
    hostile = {"alertname": "<script>alert(1)</script>", "svc": '"><img src=x onerror=alert(2)>'}
    assert (await receiver.post(webhook(alert("xss", **hostile))))[0] == 200
    client = Client(receiver)
    await client.sign_in()
    (view,) = (await receiver.incidents()).values()
    for path in ("/ui/incidents", f"/ui/incidents/{view.incident.id}", "/ui/incidents?alertname=%3Cscript%3E"):
        _, _, page, _ = await client.request("GET", path)
        assert "<script>alert" not in page
        assert "<img" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page or path.endswith("E")
    assert "<script" not in re.sub(r'<script src="/ui/static/refresh.js" defer></script>', "", page)
    sneaky = {**alert("js", alertname="Sneaky"), "generatorURL": "javascript:alert(document.cookie)"}
    assert (await receiver.post(webhook(sneaky)))[0] == 200
    sneaky_id = next(v.incident.id for v in (await receiver.incidents()).values() if v.incident.fingerprint == "js")
    _, _, page, _ = await client.request("GET", f"/ui/incidents/{sneaky_id}")
    assert "javascript:alert(document.cookie)" in page  # shown as text
    assert 'href="javascript' not in page
    status, _, page, _ = await client.request(
        "POST", "/ui/explain", {"csrf": await client.csrf(), "input": "alertname=<script>x</script>"}
    )
    assert status == 200
    assert "&lt;script&gt;x&lt;/script&gt;" in page
    assert "<script>x" not in page


async def test_failed_sign_ins_are_rate_limited_and_logged_without_the_secret(
    tmp_path: Path, receivers: Start, caplog: pytest.LogCaptureFixture
) -> None:
    client = Client(await start(tmp_path, receivers, console={"max_failed_sign_ins": 3}))
    caplog.set_level(logging.INFO)
    for _ in range(3):
        assert await client.sign_in("eve", "wrong-guess-1234") == 401
    assert await client.sign_in("eve", ADMIN_TOKEN) == 429  # even the right token waits now
    assert "wrong-guess-1234" not in caplog.text
    assert ADMIN_TOKEN not in caplog.text
    failures = [r for r in caplog.records if r.getMessage() == "console sign-in failed"]
    assert len(failures) == 3
    assert failures[0].client == "127.0.0.1"  # type: ignore[attr-defined]


def test_the_hash_command_makes_hashes_that_check() -> None:
    made = subprocess.run(
        [sys.executable, "-m", "opsloop.receiver.console.passwords"], input="correct horse\n", capture_output=True,
        text=True, check=True, timeout=60,
    )  # fmt: skip
    assert made.stdout.startswith("pbkdf2_sha256$600000$")
    assert check_password("correct horse", made.stdout.strip())
    assert not check_password("correct horse ", made.stdout.strip())


async def test_users_with_password_hashes(tmp_path: Path, receivers: Start) -> None:
    users = [{"name": "frank", "password_hash": hash_password("correct horse", iterations=1000)}]
    receiver = await start(tmp_path, receivers, console={"users": users, "admin_token_sign_in": False})
    client = Client(receiver)
    assert await client.sign_in("frank", "wrong") == 401
    assert await client.sign_in("eve", ADMIN_TOKEN) == 401  # token sign-in switched off
    assert await client.sign_in("frank", "correct horse") == 303
    _, _, page, _ = await client.request("GET", "/ui/incidents")
    assert "signed in as <strong>frank</strong>" in page


async def test_no_secret_reaches_a_page(tmp_path: Path, receivers: Start) -> None:
    slack = {"name": "team", "webhook_url": "https://hooks.slack.com/services/T/B/very-secret-path"}
    receiver = await start(tmp_path, receivers, notifiers={"slack": [slack]}, routes=[{"notify": ["slack/team"]}])
    client = Client(receiver)
    await client.sign_in()
    pages = []
    for path in ("/ui/incidents", "/ui/automation", "/ui/explain", "/ui/stats", "/ui/login"):
        pages.append((await client.request("GET", path))[2])
    pages.append((await client.request("POST", "/ui/explain", {"csrf": await client.csrf(), "input": "a=b"}))[2])
    for page in pages:
        for secret in (ADMIN_TOKEN, TOKEN, "very-secret-path"):
            assert secret not in page


async def test_console_is_off_without_any_way_to_sign_in(tmp_path: Path, receivers: Start) -> None:
    path = write_config(tmp_path, recovery=[PLAN])
    path.write_text(path.read_text().replace("admin:\n  token_file: " + str(tmp_path / "admin-token") + "\n", ""))
    receiver = await receivers(path)
    async with receiver.session.get(receiver.url + "/ui/login") as resp:
        assert resp.status == 404
    async with receiver.session.get(receiver.url + "/") as resp:
        assert "incident console" not in await resp.text()


async def test_the_landing_page_links_to_the_console(tmp_path: Path, receivers: Start) -> None:
    receiver = await start(tmp_path, receivers)
    async with receiver.session.get(receiver.url + "/") as resp:
        assert '<a href="/ui/">incident console</a>' in await resp.text()


async def test_filters_and_pages_stay_in_the_url(tmp_path: Path, receivers: Start) -> None:
    receiver = await start(tmp_path, receivers)
    alerts = [alert(f"p{n}", alertname="Paged", severity="page") for n in range(55)]
    assert (await receiver.post(webhook(*alerts, alert("other", alertname="Other"))))[0] == 200
    client = Client(receiver)
    await client.sign_in()
    _, _, page, _ = await client.request("GET", "/ui/incidents?alertname=Paged&severity=page&range=1h")
    assert "55 incidents; page 1 of 2." in page
    assert page.count('<tr class="status-firing">') == 50
    assert 'href="/ui/incidents?alertname=Paged&amp;severity=page&amp;range=1h&amp;page=2" rel="next"' in page
    _, _, page, _ = await client.request("GET", "/ui/incidents?alertname=Paged&severity=page&range=1h&page=2")
    assert page.count('<tr class="status-firing">') == 5
    assert "Other" not in page
    status, _, page, _ = await client.request("GET", "/ui/incidents?since=yesterday")
    assert status == 400
    assert "since: expected YYYY-MM-DD" in page


async def test_pages_show_only_their_own_notices(tmp_path: Path, receivers: Start) -> None:
    client = Client(await start(tmp_path, receivers))
    await client.sign_in()
    _, _, page, _ = await client.request("GET", "/ui/automation?msg=fix+paused")
    assert '<p class="message" role="status">fix paused</p>' in page
    _, _, page, _ = await client.request("GET", "/ui/automation?msg=Session+expired:+sign+in+at+evil.example")
    assert "evil.example" not in page


async def test_stats_ranges_are_checked(tmp_path: Path, receivers: Start) -> None:
    receiver = await start(tmp_path, receivers)
    assert (await receiver.admin("GET", "/api/stats?range=400d")) == (
        400,
        {"error": "the range is longer than 366 days"},
    )
    status, body = await receiver.admin("GET", "/api/stats?until=2030-01-31")
    assert status == 200
    assert (body["since"], body["until"]) == ("2030-01-01T00:00:00Z", "2030-01-31T00:00:00Z")  # 30 days before until
    client = Client(receiver)
    await client.sign_in()
    status, _, page, _ = await client.request("GET", "/ui/stats?range=soon")
    assert status == 400
    assert "range: expected a duration" in page


def test_console_config_is_checked(tmp_path: Path) -> None:
    path = write_config(tmp_path, console={"external_url": "opsloop.example.com", "users": [{"name": "a b",
                                           "password_hash": "plain"}]})  # fmt: skip
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.problems == [
        "console.users[0].name: expected text matching ^[A-Za-z0-9_.@-]{1,64}$, got 'a b'",
        "console.users[0].password_hash: expected pbkdf2_sha256$<iterations>$<salt>$<hash> (make one with "
        "python -m opsloop.receiver.console.passwords)",
        "console.external_url: expected the console's base URL, such as https://opsloop.example.com",
    ]
