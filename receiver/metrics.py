"""The receiver's own metrics, in a registry per running app (tests run several apps in one process).

Nothing is module-level: ``Components.build`` makes one ``ReceiverMetrics`` per app and hands its
counters to the parts that count (the worker, plans, notifier templates). ``/metrics`` serves this
registry followed by prometheus-client's default one, which holds only its process and platform collectors.

A receiver run as several processes (``--processes``) counts in prometheus-client's multiprocess mode:
each process writes its counters to files in one shared directory, and whichever process a scrape
reaches sums them all, as gunicorn-served Python applications do. The ``process_*`` series are then
those of the receiver's processes and their parent together (``process_family``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from opsloop.receiver.domain import CIRCUIT_BREAKER, DELIVERY, GLOBAL, PLAN, STORM_GUARD
from opsloop.receiver.process_family import FamilyCollector
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from opsloop.buildinfo import BuildInfoCollector

# Prometheus has no use for the *_created series prometheus-client adds to every counter and histogram.
disable_created_metrics()

WEBHOOK_OUTCOMES = ("accepted", "unauthorized", "invalid", "too_large", "unavailable")
ALERT_STATUSES = ("firing", "resolved")


class StoreFigures(Collector):
    """Queue depth, oldest pending age, pauses and the store's reachability, as last read at scrape time.

    A collector rather than gauges: these figures come from the store every process shares, so with
    several processes they are one reading, never a sum or a series per process.
    """

    def __init__(self) -> None:
        self.stats: dict[str, tuple[int, float]] = {PLAN: (0, 0.0), DELIVERY: (0, 0.0)}
        self.pauses: list[str] = []
        self.up = 0

    def observe(self, stats: dict[str, tuple[int, float]], pauses: Iterable[str]) -> None:
        self.stats = {**self.stats, **stats}
        self.pauses = list(pauses)
        self.up = 1

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "opsloop_receiver_queue_depth", "Pending work items by kind (plan, delivery).", labels=["kind"]
        )
        oldest = GaugeMetricFamily(
            "opsloop_receiver_oldest_pending_seconds", "Age of the oldest work item that is due but not done.",
            labels=["kind"],
        )  # fmt: skip
        for kind, (count, age) in self.stats.items():
            depth.add_metric([kind], count)
            oldest.add_metric([kind], age)
        paused = GaugeMetricFamily(
            "opsloop_receiver_automation_paused", "1 while automation is paused, by scope ('*' for all plans, "
            "else the plan name).", labels=["scope"],
        )  # fmt: skip
        paused.add_metric([GLOBAL], 1 if GLOBAL in self.pauses else 0)
        for scope in self.pauses:
            if scope != GLOBAL:
                paused.add_metric([scope], 1)
        yield from (depth, oldest, paused)
        yield GaugeMetricFamily(
            "opsloop_receiver_store_up", "1 when the last store query at scrape time succeeded.", value=self.up
        )


class ReceiverMetrics:
    def __init__(self, shared_dir: str | None = None) -> None:
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
        self.guard_trips = Counter(
            "opsloop_receiver_guard_trips", "Times a guard paused automation, by guard (circuit_breaker, storm_guard).",
            ["guard"], registry=self.registry,
        )  # fmt: skip
        self.template_failures = Counter(
            "opsloop_receiver_template_failures",
            "Notifications sent with the built-in fallback text because their template failed.",
            ["notifier"], registry=self.registry,
        )  # fmt: skip
        self.store = StoreFigures()
        self.registry.register(self.store)
        # What /metrics serves, built once. One process: this registry, then prometheus-client's default
        # one, which holds only its process and platform collectors.
        self.served = [self.registry, REGISTRY] if shared_dir is None else [self._merged(shared_dir)]
        # Counters alerted on with increase() start at 0, so their first event already shows as one.
        for guard in (CIRCUIT_BREAKER, STORM_GUARD):
            self.guard_trips.labels(guard)
        # Every webhook counts one outcome and its alerts by status: the children looked up once, here.
        self.webhook_outcomes = {outcome: self.webhooks.labels(outcome) for outcome in WEBHOOK_OUTCOMES}
        self.alert_statuses = {status: self.alerts.labels(status) for status in ALERT_STATUSES}

    def render(self) -> bytes:
        return b"".join(generate_latest(registry) for registry in self.served)

    def _merged(self, shared_dir: str) -> CollectorRegistry:
        """Several processes: counters and histograms summed over every process's files (this one's
        included), the figures this process just read from the store, which every process shares, and the
        ``process_*`` of the receiver's processes and their parent together."""
        merged = CollectorRegistry(auto_describe=True)
        merged.register(BuildInfoCollector())
        MultiProcessCollector(merged, shared_dir)
        merged.register(self.store)
        merged.register(FamilyCollector(os.getppid()))  # this process was started by the receiver's parent
        return merged
