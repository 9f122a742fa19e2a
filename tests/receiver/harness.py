"""Helpers for the receiver tests: configs with secret files, webhook payloads, a receiver on a real port."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from opsloop.receiver.app import build_app
from opsloop.receiver.config import load_config
from opsloop.receiver.domain import IncidentView
from opsloop.receiver.handlers import STATE, ReceiverState
from opsloop.receiver.store import Store
from opsloop.testsupport.servers import LOOPBACK

TOKEN = "webhook-token-1"
ADMIN_TOKEN = "admin-token-2"
STARTS = "2030-01-02T03:04:05.123456789Z"
FAST_WORKER = {"poll_interval": "50ms", "lease": "3s", "retry_base": "50ms", "retry_cap": "200ms"}


def write_config(directory: Path, **sections: Any) -> Path:
    """A config whose webhook and admin tokens live in files, like ``/run/secrets/...`` in production."""
    (directory / "token").write_text(TOKEN + "\n")
    (directory / "admin-token").write_text(ADMIN_TOKEN)
    config: dict[str, Any] = {
        "auth": {"bearer_token_file": str(directory / "token")},
        "admin": {"token_file": str(directory / "admin-token")},
        "store": f"sqlite://{directory / 'receiver.db'}",
        "worker": FAST_WORKER,
        **sections,
    }
    path = directory / "receiver.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def slack_notifier(name: str, url: str) -> dict[str, str]:
    return {"name": name, "webhook_url": url}


def email_notifier(name: str, port: int, to: str = "oncall@example.com") -> dict[str, Any]:
    return {
        "name": name, "smtp": {"host": LOOPBACK, "port": port, "starttls": "off"}, "from": "alerts@example.com",
        "to": [to],
    }  # fmt: skip


def alert(
    fingerprint: str, status: str = "firing", starts: str = STARTS, ends: str = "0001-01-01T00:00:00Z", **labels: str
) -> dict[str, Any]:
    return {
        "status": status, "labels": {"alertname": "TestAlert", **labels}, "annotations": {"summary": "test"},
        "startsAt": starts, "endsAt": ends, "generatorURL": "http://prometheus/graph", "fingerprint": fingerprint,
    }  # fmt: skip


def webhook(
    *alerts: dict[str, Any], truncated: int = 0, receiver: str = "opsloop", group_key: str = "{}:{}"
) -> dict[str, Any]:
    """A webhook about one Alertmanager group; ``group_key=""`` (not sent by Alertmanager) makes every alert
    a message of its own, for tests about one message per alert."""
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "version": "4", "groupKey": group_key, "truncatedAlerts": truncated, "status": status, "receiver": receiver,
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://alertmanager",
        "alerts": list(alerts),
    }  # fmt: skip


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Receiver:
    """A receiver app served on a free loopback port, inside the test's event loop."""

    url: str
    app: web.Application
    runner: web.AppRunner
    session: aiohttp.ClientSession

    @property
    def state(self) -> ReceiverState:
        return self.app[STATE]

    @property
    def store(self) -> Store:
        assert self.state.store is not None
        return self.state.store

    async def post(self, payload: object, token: str | None = TOKEN, path: str = "/alerts") -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        async with self.session.post(self.url + path, data=body, headers=headers) as resp:
            text = await resp.text()
            return resp.status, json.loads(text) if text.startswith(("{", "[")) else text

    async def admin(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with self.session.request(method, self.url + path, json=body, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)

    async def incidents(self) -> dict[str, IncidentView]:
        return {v.incident.fingerprint: v for v in await self.store.incidents(limit=1000)}

    async def settled(self, timeout: float = 20.0) -> None:
        """Wait until no work is pending."""

        async def idle() -> bool:
            stats = await self.store.queue_stats(time.time())
            return all(count == 0 for count, _ in stats.values())

        await eventually(idle, timeout, "all work done")

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_receiver(config_path: Path, session: aiohttp.ClientSession) -> Receiver:
    app = build_app(load_config(config_path))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, LOOPBACK, 0).start()  # the kernel picks the port: nothing can take it first
    port = runner.addresses[0][1]
    return Receiver(f"http://{LOOPBACK}:{port}", app, runner, session)
