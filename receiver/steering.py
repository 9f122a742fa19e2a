"""What a person can do to automation, shared by the admin API and the console: pause, resume, run a
plan by hand, and explain routing. Each change is recorded with who made it.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from opsloop.receiver.config import ReceiverConfig
from opsloop.receiver.domain import GLOBAL, ManualRun
from opsloop.receiver.routing import explain, plan_values
from opsloop.receiver.store import Store

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
MAX_LABELS = 64
MAX_VALUE = 1024


class Refused(ValueError):
    """A request that cannot be carried out as given; the message says why."""


def scope_of(config: ReceiverConfig, plan: str | None) -> str:
    if plan is None or plan == GLOBAL:
        return GLOBAL
    if config.plan(plan) is None:
        raise Refused(f"no plan named {plan!r}")
    return plan


async def pause(store: Store, config: ReceiverConfig, plan: str | None, reason: str, actor: str) -> None:
    await store.pause(scope_of(config, plan), reason.strip()[:500] or "no reason given", time.time(), actor)


async def resume(store: Store, config: ReceiverConfig, plan: str | None, actor: str) -> bool:
    return await store.resume(scope_of(config, plan), time.time(), actor)


def check_labels(labels: object) -> dict[str, str]:
    """Labels as an alert could carry them: Prometheus label names, string values, within limits."""
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise Refused("labels must be an object of strings")
    if len(labels) > MAX_LABELS:
        raise Refused(f"at most {MAX_LABELS} labels")
    for name, value in labels.items():
        if not LABEL_NAME.match(name):
            raise Refused(f"label name {name[:80]!r} is not a valid Prometheus label name")
        if len(value) > MAX_VALUE:
            raise Refused(f"label {name} is longer than {MAX_VALUE} characters")
    return dict(labels)


def preview_run(config: ReceiverConfig, plan_name: str, labels: object) -> tuple[dict[str, str], dict[str, str]]:
    """Validated labels and the values the plan's actions would get, or Refused with every problem."""
    plan = config.plan(plan_name)
    if plan is None:
        raise Refused(f"no plan named {plan_name!r}")
    checked = check_labels(labels)
    values, problems = plan_values(plan, checked)
    if problems:
        raise Refused("; ".join(problems))
    return checked, values


async def run_by_hand(
    store: Store, config: ReceiverConfig, plan_name: str, labels: object, dry_run: bool, actor: str
) -> ManualRun:
    """Queue a plan run for ``labels`` (validated like an alert's), recorded with ``actor``."""
    checked, values = preview_run(config, plan_name, labels)
    now = time.time()
    started = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
    return await store.start_manual_run(
        plan_name, {**checked, "alertname": checked.get("alertname", f"manual:{plan_name}")}, values, dry_run,
        uuid.uuid4().hex, now, started, actor,
    )  # fmt: skip


async def explain_alerts(
    store: Store, config: ReceiverConfig, alerts: Sequence[Mapping[str, str]]
) -> list[dict[str, Any]]:
    """Which routes and plans each label set matches and why, and whether a matching plan is paused."""
    pauses = await store.pauses()
    out = []
    for labels in alerts:
        found = explain(config, labels)
        for plan in found.plans:
            paused = pauses.get(GLOBAL) or pauses.get(str(plan["name"]))
            plan["paused"] = paused[0] if paused else None
        out.append({"labels": dict(labels), **asdict(found)})
    return out
