"""The alerting rules, built from the thresholds; the template only lays them out as YAML.

Descriptions reference only labels that survive each expression (see the promtool tests, which pin
every alert's exact labels and annotations).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from opsloop.render import records
from opsloop.render.dashboards import OVERVIEW_UID, QUEUES_UID
from opsloop.render.formats import duration, number, percent
from opsloop.render.promql import label, series, value
from opsloop.render.receiver_alerts import receiver_alerts
from opsloop.render.thresholds import Rule, Severity, Thresholds, Tier, Tiered

from opsloop import metric_contract as contract

QUEUE = f"queue {label('queue')} on Redis {label('redis')}"
DLQ = f"DLQ {label('dlq')} on Redis {label('redis')}"
REDIS = f"Redis {label('redis')}"
QUEUE_MATCH = "on (job, instance, redis, queue, framework)"
"""Framework queues carry ``framework``: an RQ and a Dramatiq queue may share a name on one Redis."""
PER_SECOND = 'printf "%.3g"'  # humanize would print 0.1/s as "100m"


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: float
    severity: Severity
    summary: str
    description: str
    runbook_url: str
    dashboard: str


@dataclass(frozen=True)
class AlertGroup:
    name: str
    rules: list[Alert]


class Builder:
    """Fills in what every alert shares: the for duration, runbook link and dashboard link."""

    def __init__(self, t: Thresholds) -> None:
        self.t = t

    def alert(self, name: str, expr: str, rule: Rule, summary: str, description: str, uid: str = OVERVIEW_UID) -> Alert:
        return self.make(name, expr, rule.for_, rule.severity, summary, description, uid)

    def tiered(
        self,
        name: str,
        tiers: Tiered,
        expr: Callable[[Tier], str],
        summary: str,
        description: Callable[[Tier], str],
        uid: str = OVERVIEW_UID,
    ) -> list[Alert]:
        """One rule per tier, each with its own threshold in the expression and description."""
        return [
            self.make(name, expr(tier), tier.for_, severity, summary, description(tier), uid)
            for severity, tier in (("warning", tiers.warning), ("critical", tiers.critical))
        ]

    def make(
        self, name: str, expr: str, for_: float, severity: Severity, summary: str, description: str, uid: str
    ) -> Alert:
        links = self.t.links
        return Alert(
            name=name,
            expr=expr,
            for_=for_,
            severity=severity,
            summary=summary,
            description=description,
            runbook_url=f"{links.runbook_url}#{name.lower()}",
            dashboard=f"{links.grafana_url}/d/{uid}",
        )


def _queue_alerts(b: Builder, t: Thresholds) -> list[Alert]:
    q, sel = t.queues, t.selector
    length = series(contract.QUEUE_LENGTH.series, sel)
    workers = series(contract.QUEUE_WORKERS.series, sel)
    return [
        *b.tiered(
            "QueueBacklogHigh",
            q.backlog,
            lambda tier: f"{length} > {number(tier.threshold)}",
            "Queue backlog is high",
            lambda tier: f"The {QUEUE} holds {value()} items ({_above(number(tier.threshold), tier)}).",
            QUEUES_UID,
        ),
        *b.tiered(
            "QueueOldestItemTooOld",
            q.oldest_age,
            lambda tier: f"{series(contract.QUEUE_OLDEST_AGE.series, sel)} > {number(tier.threshold)}",
            "Queue items wait too long",
            lambda tier: (
                f"The oldest item in the {QUEUE} has waited {value('humanizeDuration')} "
                f"({_above(duration(tier.threshold), tier)})."
            ),
            QUEUES_UID,
        ),
        b.alert(
            "QueueNotDraining",
            f"{series(records.queue_growth(t), sel)} > {number(q.not_draining.threshold)}\n"
            f"and {QUEUE_MATCH}\n{workers} > 0",
            q.not_draining,
            "Queue grows although workers serve it",
            f"The {QUEUE} grew by {value(PER_SECOND)} items/s on average over the last "
            f"{duration(q.not_draining.window)} while workers serve it.",
            QUEUES_UID,
        ),
        b.alert(
            "QueueNoWorkers",
            f"{length} > {number(q.no_workers.threshold)}\nand {QUEUE_MATCH}\n{workers} == 0",
            q.no_workers,
            "Queue has items but no workers",
            f"The {QUEUE} holds {value()} items and no worker serves it.",
            QUEUES_UID,
        ),
        b.alert(
            "QueueKeysTruncated",
            f"{series(contract.KEYS_TRUNCATED.series, sel)} > {number(q.keys_truncated.threshold)}",
            q.keys_truncated,
            "Exporter key scan truncated",
            f"The exporter stopped scanning keys matching {label('pattern')} on {REDIS} at its limit: "
            "some queues are not measured.",
            QUEUES_UID,
        ),
    ]


def _dlq_alerts(b: Builder, t: Thresholds) -> list[Alert]:
    d, sel = t.dlq, t.selector
    return [
        b.alert(
            "DLQEntriesIncreasing",
            # A DLQ key that appeared within the window while Prometheus was already scraping the exporter
            # (first found by a pattern) counts whole: its first burst starts its series, so it never shows
            # as growth. The `up offset` guard keeps a fresh Prometheus or a new exporter from paging.
            f"{series(records.dlq_growth(t), sel)} >= {number(d.increasing.threshold)}\n"
            f"or ({series(contract.DLQ_LENGTH.series, sel)} >= {number(d.increasing.threshold)}"
            f" unless {series(contract.DLQ_LENGTH.series, sel)} offset {duration(d.increasing.window)})\n"
            f"  and on (job, instance) {series('up', sel)} offset {duration(d.increasing.window)}",
            d.increasing,
            "Dead letters are piling up",
            f"The {DLQ} gained {value()} entries over the last {duration(d.increasing.window)}.",
            QUEUES_UID,
        ),
        b.alert(
            "DLQNotEmpty",
            f"{series(contract.DLQ_LENGTH.series, sel)} > {number(d.not_empty.threshold)}",
            d.not_empty,
            "Dead letters wait for triage",
            f"The {DLQ} holds {value()} entries ({_above(number(d.not_empty.threshold), d.not_empty)}).",
            QUEUES_UID,
        ),
    ]


def _framework_alerts(b: Builder, t: Thresholds) -> list[Alert]:
    stuck = t.frameworks.stuck_in_progress
    return [
        b.alert(
            "QueueJobsStuckInProgress",
            f"{series(contract.QUEUE_IN_PROGRESS_OVERDUE.series, t.selector)} > {number(stuck.threshold)}",
            stuck,
            "Jobs are stuck in progress",
            f"{value()} {label('framework')} jobs of the {QUEUE} are in progress past their deadline "
            f"(worker heartbeat expired or unacked past the visibility timeout) for {duration(stuck.for_)}.",
            QUEUES_UID,
        ),
    ]


def _cache_alerts(b: Builder, t: Thresholds) -> list[Alert]:
    c, sel = t.cache, t.selector
    return [
        b.alert(
            "CacheHitRatioLow",
            f"{series(records.CACHE_HIT_RATIO, sel)} < {number(c.hit_ratio_low.threshold)}",
            c.hit_ratio_low,
            "Cache hit ratio is low",
            f"The cache hit ratio on {REDIS} is {value('humanizePercentage')} "
            f"(below {percent(c.hit_ratio_low.threshold)} for {duration(c.hit_ratio_low.for_)}).",
        ),
        *b.tiered(
            "RedisMemoryHigh",
            c.memory,
            lambda tier: f"{series(records.CACHE_MEMORY_RATIO, sel)} > {number(tier.threshold)}",
            "Redis memory is nearly full",
            lambda tier: (
                f"{REDIS} uses {value('humanizePercentage')} of its maxmemory "
                f"({_above(percent(tier.threshold), tier)})."
            ),
        ),
        b.alert(
            "RedisEvictingKeys",
            f"{series(records.CACHE_EVICTIONS, sel)} > {number(c.evictions.threshold)}",
            c.evictions,
            "Redis evicts keys",
            f"{REDIS} evicts {value(PER_SECOND)} keys/s; evicted queue keys lose work.",
        ),
        b.alert(
            "RedisSlow",
            f"{series(contract.CACHE_PING.series, sel)} > {number(c.slow.threshold)}",
            c.slow,
            "Redis answers slowly",
            f"{REDIS} took {value('humanizeDuration')} to answer PING ({_above(duration(c.slow.threshold), c.slow)}).",
        ),
    ]


def _source_alerts(b: Builder, t: Thresholds) -> list[Alert]:
    s, sel = t.sources, t.selector
    return [
        b.alert(
            "OpsloopSourceDown",
            f"{series(contract.SOURCE_UP.series, sel)} == 0",
            s.down,
            "Exporter cannot reach a source",
            f"The opsloop exporter {label('instance')} cannot reach {label('source')}.",
        ),
        b.alert(
            "OpsloopExporterDown",
            f"{series('up', sel)} == 0",
            s.exporter_down,
            "Exporter cannot be scraped",
            f"Prometheus cannot scrape the opsloop exporter {label('instance')}: opsloop alerts are blind.",
        ),
        b.alert(
            "OpsloopExporterAbsent",
            f"absent({series('up', sel)})",
            s.exporter_absent,
            "Exporter target is missing",
            f"Prometheus has no target matching {{{sel}}}: queue, DLQ and business alerts cannot fire.",
        ),
        b.alert(
            "BusinessQueryFailing",
            f"increase({series(contract.QUERY_ERRORS.series, sel)}[{duration(s.query_failing.window)}]) > 0",
            s.query_failing,
            "Business query fails",
            f"Business query {label('query')} failed on the opsloop exporter {label('instance')} "
            f"within the last {duration(s.query_failing.window)}.",
        ),
        b.alert(
            "BusinessQueryStale",
            f"{series(contract.QUERY_RESULT_AGE.series, sel)} > {number(s.query_stale.threshold)}",
            s.query_stale,
            "Business query result is stale",
            f"Business query {label('query')} last produced a result {value('humanizeDuration')} ago "
            f"(more than {duration(s.query_stale.threshold)}).",
        ),
    ]


def _job_alerts(b: Builder, t: Thresholds) -> list[Alert]:
    jobs, sel = t.business.job_failures, t.selector
    ratio = number(jobs.max_ratio)
    burn = []
    for severity, tier in (("critical", jobs.critical), ("warning", jobs.warning)):
        short, long = (series(records.job_failure_ratio(w), sel) for w in (tier.short_window, tier.long_window))
        burn.append(
            b.make(
                "JobFailureRateHigh",
                f"{short} > {ratio}\nand\n{long} > {ratio}",
                tier.for_,
                severity,
                "Too many jobs fail",
                f"{value('humanizePercentage')} of jobs finished as failed over the last "
                f"{duration(tier.short_window)}, and more than {percent(jobs.max_ratio)} over the last "
                f"{duration(tier.long_window)}.",
                OVERVIEW_UID,
            )
        )
    p95 = t.business.job_duration
    return [
        *burn,
        b.alert(
            "JobDurationHigh",
            f"{series(p95.metric, sel)} > {number(p95.threshold)}",
            p95,
            "Jobs run slowly",
            f"95% of jobs finished within {value('humanizeDuration')} over the last 5 minutes "
            f"({_above(duration(p95.threshold), p95)}).",
        ),
    ]


def _above(threshold: str, rule: Rule | Tier) -> str:
    return f"more than {threshold} for {duration(rule.for_)}"


def alert_groups(t: Thresholds) -> list[AlertGroup]:
    b = Builder(t)
    return [
        AlertGroup("opsloop-queues", _queue_alerts(b, t) + _dlq_alerts(b, t) + _framework_alerts(b, t)),
        AlertGroup("opsloop-cache", _cache_alerts(b, t)),
        AlertGroup("opsloop-sources", _source_alerts(b, t)),
        AlertGroup("opsloop-jobs", _job_alerts(b, t)),
        *([AlertGroup("opsloop-receiver", receiver_alerts(b, t))] if t.receiver.enabled else []),
    ]
