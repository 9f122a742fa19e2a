"""Assemble the receiver: HTTP routes, the store, notifiers, actions, the verifier and the worker.

Secrets are read by ``build_app`` (through ``Components``), so a missing secret stops startup with a
clear message; the store opens and the worker starts in the app's lifecycle and stop with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from opsloop.receiver.actions import Action, attach_journal, build_action
from opsloop.receiver.admin import add_admin_routes
from opsloop.receiver.config import ReceiverConfig
from opsloop.receiver.console.auth import Authenticator
from opsloop.receiver.console.routes import add_console
from opsloop.receiver.handlers import (
    STATE,
    TELEMETRY_PATH,
    Credential,
    ReceiverState,
    healthy,
    landing,
    metrics,
    ready,
    receive_alerts,
)  # fmt: skip
from opsloop.receiver.metrics import ReceiverMetrics
from opsloop.receiver.notify import Notifier, build_notifiers
from opsloop.receiver.notify.slack_app import SlackAppNotifier
from opsloop.receiver.recovery import PlanRunner, Verifier
from opsloop.receiver.store import StoreUnavailable, open_store
from opsloop.receiver.takeover import take_over, worker_id
from opsloop.receiver.worker import Worker

log = logging.getLogger(__name__)


@dataclass
class Components:
    """Everything built from secrets: credentials, notifiers and actions."""

    webhook_auth: Credential
    admin_auth: Credential | None
    console: Authenticator
    notifiers: Mapping[str, Notifier]
    actions: Mapping[str, Sequence[Action]]
    metrics: ReceiverMetrics

    @classmethod
    def build(cls, config: ReceiverConfig, metrics_dir: str | None = None) -> Components:
        """Raise ValueError (naming the section) when a secret or template cannot be used.

        ``metrics_dir``: the directory the processes of one receiver share their counters in, if several.
        """
        token = config.admin.secret("token") if config.admin is not None else None
        admin = Credential.bearer(token or "") if config.admin is not None else None
        metrics = ReceiverMetrics(metrics_dir)
        return cls(
            webhook_auth=Credential.from_auth(config.auth),
            admin_auth=admin,
            console=Authenticator(config.console, token),
            notifiers=build_notifiers(config.notifiers, config.templates_dir, metrics.template_failures),
            actions={plan.name: [build_action(a) for a in plan.actions] for plan in config.recovery},
            metrics=metrics,
        )

    async def close(self) -> None:
        for notifier in self.notifiers.values():
            await notifier.close()
        for actions in self.actions.values():
            for action in actions:
                await action.close()


def build_app(
    config: ReceiverConfig, components: Components | None = None, telemetry_path: str = "/metrics"
) -> web.Application:
    parts = components or Components.build(config)
    app = web.Application(client_max_size=config.limits.max_body_bytes)
    app[STATE] = ReceiverState(config, parts.metrics, parts.webhook_auth, parts.admin_auth)
    app[TELEMETRY_PATH] = telemetry_path
    app.router.add_get("/", landing)
    app.router.add_post("/alerts", receive_alerts)
    app.router.add_get(telemetry_path, metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    add_admin_routes(app)
    add_console(app, parts.console)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        state = app[STATE]
        store = open_store(config.store)
        await store.open()
        await attach_journal([a for actions in parts.actions.values() for a in actions], store)
        owner = worker_id()
        for notifier in parts.notifiers.values():
            if isinstance(notifier, SlackAppNotifier):
                notifier.keep_refs_in(store)
        try:
            await take_over(store)
        except StoreUnavailable as exc:  # not fatal: the leases still expire
            log.warning("cannot look for a dead predecessor's work", extra={"error": str(exc)})
        async with aiohttp.ClientSession() as session:
            verifier = (
                Verifier(session, config.prometheus_url, config.prometheus_timeout) if config.prometheus_url else None
            )
            runner = PlanRunner(config, store, parts.actions, verifier, state.metrics, owner, config.worker.lease)
            state.store = store
            state.worker = Worker(config, store, parts.notifiers, runner, state.metrics, owner)
            task = asyncio.create_task(state.worker.run(), name="worker")
            log.info("receiver started", extra={"owner": owner, "plans": len(config.recovery)})
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                state.worker = None
                state.store = None
                await parts.close()
                await store.close()

    app.cleanup_ctx.append(lifecycle)
    return app
