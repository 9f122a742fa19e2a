"""Console fixtures: a receiver running as its own process on a free port, a real headless Chromium, and a
browser-like HTTP client (cookies, CSRF tokens) for the tests that need no rendering.

For browser tests the receiver is a separate process (``python -m opsloop.receiver``), as in production,
so the browser, the test's webhooks and the receiver never share an event loop.
"""

from __future__ import annotations

import json
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from opsloop.testsupport.browser import start_chromium
from opsloop.testsupport.servers import LOOPBACK, ManagedProcess, ServerError, free_port, http_ok, wait_until
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.receiver.harness import ADMIN_TOKEN, TOKEN, Receiver, write_config

PYTHON = "/usr/bin/python3"
"""Debian's python3 (deploy/local.sh installs it) runs the plans' actions: timelines show its path."""


def record_plan(name: str, path: Path, **extra: Any) -> dict[str, Any]:
    """A plan whose one action appends ``{svc}`` to ``path``: the file proves it ran (or did not)."""
    action = {
        "type": "command",
        "argv": [PYTHON, "-c", "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n')", str(path), "{svc}"],
    }
    return {"name": name, "match": {"alertname": name}, "labels": {"svc": "^[a-z][a-z0-9-]{0,30}$"},
            "actions": [action], **extra}  # fmt: skip


def failing_plan(name: str) -> dict[str, Any]:
    action = {"type": "command", "argv": [PYTHON, "-c", "import sys; sys.exit(3)"]}
    return {"name": name, "match": {"alertname": name}, "labels": {"svc": "^[a-z][a-z0-9-]{0,30}$"},
            "actions": [action]}  # fmt: skip


@dataclass
class ConsoleReceiver:
    url: str
    process: ManagedProcess
    workdir: Path

    def request(self, method: str, path: str, body: object = None, token: str | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def post(self, payload: object) -> int:
        return self.request("POST", "/alerts", payload, TOKEN)[0]

    def admin(self, method: str, path: str, body: object = None) -> Any:
        status, answer = self.request(method, path, body, ADMIN_TOKEN)
        assert 200 <= status < 300, (status, answer)
        return answer

    def incident(self, fingerprint: str) -> dict[str, Any]:
        found = [
            i for i in self.admin("GET", "/api/incidents?limit=1000")["incidents"] if i["fingerprint"] == fingerprint
        ]
        assert found, f"no incident {fingerprint}"
        return found[0]

    def wait(self, check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
        try:
            wait_until(check, timeout, what)
        except ServerError as exc:
            raise AssertionError(f"{exc}\n{self.process.log_tail()}") from None


@pytest.fixture
def console_receiver(tmp_path: Path) -> Iterator[Callable[..., ConsoleReceiver]]:
    """Start ``opsloop-receiver`` with the given config sections; stopped at the end of the test."""
    started: list[ManagedProcess] = []

    def start(**sections: Any) -> ConsoleReceiver:
        workdir = tmp_path / f"receiver{len(started)}"
        workdir.mkdir()
        config = write_config(workdir, **sections)
        port = free_port()
        process = ManagedProcess("receiver", workdir)
        started.append(process)
        process.spawn([sys.executable, "-m", "opsloop.receiver", "--config", str(config),
                       "--web.listen-address", f"{LOOPBACK}:{port}"])  # fmt: skip
        url = f"http://{LOOPBACK}:{port}"
        process.wait_ready(lambda: http_ok(url + "/-/ready"))
        return ConsoleReceiver(url, process, workdir)

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    driver = start_chromium(tmp_path_factory.mktemp("chromium"))
    yield driver
    driver.quit()


class Browser:
    """The session's Chromium pointed at one receiver; screenshots go to the test's directory."""

    def __init__(self, driver: webdriver.Chrome, shots: Path) -> None:
        self.driver = driver
        self.shots = shots
        self.base = ""

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def sign_in(self, base: str, name: str = "alice", secret: str = ADMIN_TOKEN) -> None:
        self.base = base
        self.open("/ui/login")
        self.driver.find_element(By.ID, "name").send_keys(name)
        self.driver.find_element(By.ID, "secret").send_keys(secret)
        self.click("button[type=submit]")
        self.wait_for(lambda: self.path() == "/ui/incidents", "the incidents page after sign-in")

    def path(self) -> str:
        return self.driver.execute_script("return window.location.pathname")

    def css(self, selector: str) -> Any:
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def click(self, selector: str) -> None:
        self.css(selector).click()

    def follow(self, selector: str) -> None:
        """Open the link at ``selector``; a refresh may replace the list meanwhile, so read it again then."""
        for _ in range(10):
            try:
                path = self.css(selector).get_attribute("pathname")
                break
            except StaleElementReferenceException:
                continue
        else:
            raise AssertionError(f"{selector} kept being replaced")
        self.open(path)

    def text(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "body").text

    def wait_for(self, check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
        try:
            # A page being replaced (a click, a refresh) makes elements stale for a moment: look again.
            WebDriverWait(self.driver, timeout, 0.2, ignored_exceptions=(WebDriverException,)).until(lambda _: check())
        except TimeoutException as exc:
            raise AssertionError(f"timed out waiting for {what}; page text:\n{self.text()[:3000]}") from exc

    def wait_text(self, text: str, timeout: float = 15.0) -> None:
        self.wait_for(lambda: text in self.text(), repr(text), timeout)

    def shoot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path


@pytest.fixture
def browser(chromium: webdriver.Chrome, tmp_path: Path) -> Iterator[Browser]:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    chromium.delete_all_cookies()
    yield Browser(chromium, shots)
    chromium.delete_all_cookies()


class Client:
    """A browser-like client over aiohttp: keeps the session cookie and reads CSRF tokens from forms."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.cookies: dict[str, str] = {}

    async def request(
        self, method: str, path: str, data: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str, list[str]]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
        async with self.receiver.session.request(
            method, self.receiver.url + path, data=data, headers=headers, allow_redirects=False
        ) as resp:
            set_cookies = resp.headers.getall("Set-Cookie", [])
            for raw in set_cookies:
                for name, morsel in SimpleCookie(raw).items():
                    if morsel.value and morsel["max-age"] != "0":
                        self.cookies[name] = morsel.value
                    else:
                        self.cookies.pop(name, None)
            return resp.status, dict(resp.headers), await resp.text(), set_cookies

    async def sign_in(self, name: str = "eve", secret: str = ADMIN_TOKEN) -> int:
        _, _, page, _ = await self.request("GET", "/ui/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token
        form = {"csrf": token.group(1), "name": name, "secret": secret, "next": "/ui/incidents"}
        status, _, _, _ = await self.request("POST", "/ui/login", form)
        return status

    async def csrf(self) -> str:
        _, _, page, _ = await self.request("GET", "/ui/automation")
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert found
        return found.group(1)
