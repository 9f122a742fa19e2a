"""The receiver's own metrics, in a registry per running app (tests run several apps in one process).

Nothing is module-level: ``Components.build`` makes one ``ReceiverMetrics`` per app and hands its
counters to the parts that count (the worker, plans, notifier templates). ``/metrics`` serves this
registry followed by prometheus-client's default one, which holds only its process and platform collectors.
"""

from __future__ import annotations

from opsloop.receiver.domain import CIRCUIT_BREAKER, DELIVERY, GLOBAL, PLAN, STORM_GUARD
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from opsloop.buildinfo import BuildInfoCollector

# Prometheus has no use for the *_created series prometheus-client adds to every counter and histogram.
disable_created_metrics()

WEBHOOK_OUTCOMES = ("accepted", "unauthorized", "invalid", "too_large", "unavailable")
ALERT_STATUSES = ("firing", "resolved")


class ReceiverMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(BuildInfoCollector())
        self.webhooks = Counter(
            "opsloop_receiver_webhooks", "Webhook requests by outcome (accepted, unauthorized, invalid, "
            "too_large, unavailable).", ["outcome"], registry=self.registry,
        )  # fmt: skip
        self.alerts = Counter(
            "opsloop_receiver_alerts", "Alerts received in accepted webhooks, by status.", ["status"],
            registry=self.registry,
        )  # fmt: skip
        self.actions = Counter(
            "opsloop_receiver_actions", "Recovery actions run, by plan, type and result (ok, failed, "
            "dry_run, interrupted).", ["plan", "type", "result"], registry=self.registry,
        )  # fmt: skip
        self.action_seconds = Histogram(
            "opsloop_receiver_action_duration_seconds", "How long recovery actions took.", ["plan", "type"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120), registry=self.registry,
        )  # fmt: skip
        self.plan_runs = Counter(
            "opsloop_receiver_plan_runs", "Recovery plan runs ended, by plan and outcome (recovered, "
            "escalated, skipped).", ["plan", "outcome"], registry=self.registry,
        )  # fmt: skip
        self.deliveries = Counter(
            "opsloop_receiver_deliveries", "Notification deliveries by notifier and result (sent, retry, "
            "failed).", ["notifier", "result"], registry=self.registry,
        )  # fmt: skip
        self.queue_depth = Gauge(
            "opsloop_receiver_queue_depth", "Pending work items by kind (plan, delivery).", ["kind"],
            registry=self.registry,
        )  # fmt: skip
        self.oldest_pending = Gauge(
            "opsloop_receiver_oldest_pending_seconds", "Age of the oldest work item that is due but not done.",
            ["kind"], registry=self.registry,
        )  # fmt: skip
        self.paused = Gauge(
            "opsloop_receiver_automation_paused", "1 while automation is paused, by scope ('*' for all "
            "plans, else the plan name).", ["scope"], registry=self.registry,
        )  # fmt: skip
        self.guard_trips = Counter(
            "opsloop_receiver_guard_trips", "Times a guard paused automation, by guard (circuit_breaker, storm_guard).",
            ["guard"], registry=self.registry,
        )  # fmt: skip
        self.template_failures = Counter(
            "opsloop_receiver_template_failures",
            "Notifications sent with the built-in fallback text because their template failed.",
            ["notifier"], registry=self.registry,
        )  # fmt: skip
        self.store_up = Gauge(
            "opsloop_receiver_store_up", "1 when the last store query at scrape time succeeded.",
            registry=self.registry,
        )  # fmt: skip
        for kind in (PLAN, DELIVERY):
            self.queue_depth.labels(kind)
            self.oldest_pending.labels(kind)
        self.paused.labels(GLOBAL)
        # Counters alerted on with increase() start at 0, so their first event already shows as one.
        for guard in (CIRCUIT_BREAKER, STORM_GUARD):
            self.guard_trips.labels(guard)
        # Every webhook counts one outcome and its alerts by status: the children looked up once, here.
        self.webhook_outcomes = {outcome: self.webhooks.labels(outcome) for outcome in WEBHOOK_OUTCOMES}
        self.alert_statuses = {status: self.alerts.labels(status) for status in ALERT_STATUSES}

    def observe_store(self, stats: dict[str, tuple[int, float]], pauses: dict[str, object]) -> None:
        for kind, (count, age) in stats.items():
            self.queue_depth.labels(kind).set(count)
            self.oldest_pending.labels(kind).set(age)
        self.paused.clear()
        self.paused.labels(GLOBAL).set(1 if GLOBAL in pauses else 0)
        for scope in pauses:
            self.paused.labels(scope).set(1)
        self.store_up.set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry) + generate_latest(REGISTRY)
