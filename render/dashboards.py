"""The Grafana dashboards: an overview and a queue/DLQ drill-down, coloured by the alert thresholds."""

from __future__ import annotations

from typing import Any

from opsloop.render import records
from opsloop.render.formats import duration
from opsloop.render.panels import Panel, Target, dashboard, query, steps
from opsloop.render.thresholds import Thresholds, Tiered

from opsloop import metric_contract as contract

OVERVIEW_UID = "opsloop-overview"
QUEUES_UID = "opsloop-queues"
QUEUE = 'queue=~"$queue",framework=~"$framework"'
"""``$framework`` is ``.*`` for All, so hand-configured queues (no framework label) stay in view."""
RATE = "[$__rate_interval]"


def tier_steps(tiers: Tiered) -> dict[str, Any]:
    """Orange from the warning threshold, red from the critical one."""
    return steps("green", (tiers.warning.threshold, "orange"), (tiers.critical.threshold, "red"))


def _link(uid: str, title: str) -> dict[str, Any]:
    return {
        "type": "link",
        "title": title,
        "url": f"/d/{uid}",
        "keepTime": True,
        "includeVars": True,
        "targetBlank": False,
        "icon": "dashboard",
        "tags": [],
        "asDropdown": False,
    }


def _queue_panels(t: Thresholds) -> list[Panel]:
    """Queue depth and age, shared by both dashboards so they colour queues the same way."""
    return [
        Panel(
            "timeseries",
            "Queue length",
            f"Items waiting per queue. QueueBacklogHigh fires above {t.queues.backlog.warning.threshold:g} "
            f"(warning) and {t.queues.backlog.critical.threshold:g} (critical).",
            "short",
            [Target(query(contract.QUEUE_LENGTH.series, QUEUE), "{{redis}}/{{queue}}")],
            tier_steps(t.queues.backlog),
        ),
        Panel(
            "timeseries",
            "Oldest item age",
            "How long the oldest waiting item of each queue has waited; QueueOldestItemTooOld uses the same "
            "thresholds.",
            "s",
            [Target(query(contract.QUEUE_OLDEST_AGE.series, QUEUE), "{{redis}}/{{queue}}")],
            tier_steps(t.queues.oldest_age),
        ),
    ]


def _dlq_panel(t: Thresholds) -> Panel:
    return Panel(
        "timeseries",
        "DLQ length",
        "Dead letters waiting for triage; DLQNotEmpty fires above the orange line.",
        "short",
        [Target(query(contract.DLQ_LENGTH.series), "{{redis}}/{{dlq}}")],
        steps("green", (t.dlq.not_empty.threshold, "orange")),
    )


def overview(t: Thresholds) -> dict[str, Any]:
    jobs = t.business.job_failures
    return dashboard(
        OVERVIEW_UID,
        "opsloop / Overview",
        "Health at a glance: sources, queues, dead letters, cache and business KPIs.",
        [
            Panel(
                "stat",
                "Exporter up",
                "Whether Prometheus can scrape each opsloop exporter (OpsloopExporterDown).",
                "bool_on_off",
                [Target(query("up"), "{{instance}}")],
                steps("red", (1, "green")),
                width=6,
                height=4,
            ),
            Panel(
                "stat",
                "Sources up",
                "Whether the exporter reaches each Redis and PostgreSQL source (OpsloopSourceDown).",
                "bool_on_off",
                [Target(query(contract.SOURCE_UP.series), "{{source}}")],
                steps("red", (1, "green")),
                width=18,
                height=4,
            ),
            *_queue_panels(t),
            _dlq_panel(t),
            Panel(
                "timeseries",
                "Cache hit ratio",
                "Hits / (hits + misses) over 5 minutes, the recorded series CacheHitRatioLow alerts on.",
                "percentunit",
                [Target(query(records.CACHE_HIT_RATIO), "{{redis}}")],
                steps("red", (t.cache.hit_ratio_low.threshold, "green")),
            ),
            Panel(
                "timeseries",
                "Redis memory used",
                "used_memory / maxmemory for each Redis with maxmemory set (RedisMemoryHigh).",
                "percentunit",
                [Target(query(records.CACHE_MEMORY_RATIO), "{{redis}}")],
                tier_steps(t.cache.memory),
            ),
            Panel(
                "timeseries",
                "Redis PING time",
                "Round trip of the exporter's PING; RedisSlow fires above the orange line.",
                "s",
                [Target(query(contract.CACHE_PING.series), "{{redis}}")],
                steps("green", (t.cache.slow.threshold, "orange")),
            ),
            Panel(
                "timeseries",
                "Jobs finished",
                "Jobs finished per second by final status.",
                "suffix: jobs/s",
                [Target(f"sum by ({jobs.status_label}) (rate({query(jobs.metric)}{RATE}))", "{{status}}")],
            ),
            Panel(
                "timeseries",
                "Job failure ratio",
                "Share of finished jobs that failed over 5 minutes; JobFailureRateHigh compares it with the "
                "red line on two windows.",
                "percentunit",
                [Target(query(records.job_failure_ratio(jobs.windows[0])), "{{instance}}")],
                steps("green", (jobs.max_ratio, "red")),
            ),
            Panel(
                "timeseries",
                "Job duration p95",
                "95th percentile of job run time over the last 5 minutes (JobDurationHigh).",
                "s",
                [Target(query(t.business.job_duration.metric), "p95 {{instance}}")],
                steps("green", (t.business.job_duration.threshold, "orange")),
            ),
            Panel(
                "timeseries",
                "Source errors",
                "Failed collections per second by source, and failed business queries per second.",
                "suffix: errors/s",
                [
                    Target(f"sum by (source) (rate({query(contract.SOURCE_ERRORS.series)}{RATE}))", "{{source}}"),
                    Target(
                        f"sum by (query) (rate({query(contract.QUERY_ERRORS.series)}{RATE}))",
                        "query {{query}}",
                    ),
                ],
            ),
            Panel(
                "timeseries",
                "Business query result age",
                "Seconds since each business query last produced a result (BusinessQueryStale).",
                "s",
                [Target(query(contract.QUERY_RESULT_AGE.series), "{{query}}")],
                steps("green", (t.sources.query_stale.threshold, "orange")),
            ),
        ],
        [_link(QUEUES_UID, "Queues and DLQs")],
        t.selector,
    )


def queues(t: Thresholds) -> dict[str, Any]:
    return dashboard(
        QUEUES_UID,
        "opsloop / Queues and DLQs",
        "Drill-down per queue: depth, age, growth, workers, stream consumer groups and dead letters.",
        [
            *_queue_panels(t),
            Panel(
                "timeseries",
                "Queue growth",
                f"Items per second each queue grew by over {duration(t.queues.not_draining.window)}; "
                "QueueNotDraining fires when it stays above zero while workers serve the queue.",
                "suffix: items/s",
                [Target(query(records.queue_growth(t), QUEUE), "{{redis}}/{{queue}}")],
                steps("green", (t.queues.not_draining.threshold, "orange")),
            ),
            Panel(
                "timeseries",
                "Workers per queue",
                "Workers serving each queue; QueueNoWorkers fires when this is zero and the queue has items.",
                "short",
                [Target(query(contract.QUEUE_WORKERS.series, QUEUE), "{{redis}}/{{queue}}")],
                steps("red", (1, "green")),
            ),
            Panel(
                "timeseries",
                "Jobs in progress",
                "Task-framework jobs a worker has taken and not finished (started, unacked, running).",
                "short",
                [Target(query(contract.QUEUE_IN_PROGRESS.series, QUEUE), "{{redis}}/{{framework}}/{{queue}}")],
            ),
            Panel(
                "timeseries",
                "Jobs stuck in progress",
                "In progress past their deadline (RQ heartbeat expired, Celery unacked past the visibility "
                "timeout); QueueJobsStuckInProgress fires above the orange line.",
                "short",
                [Target(query(contract.QUEUE_IN_PROGRESS_OVERDUE.series, QUEUE), "{{redis}}/{{framework}}/{{queue}}")],
                steps("green", (t.frameworks.stuck_in_progress.threshold, "orange")),
            ),
            Panel(
                "timeseries",
                "Scheduled jobs",
                "Task-framework jobs waiting for a future time (scheduled, delayed, ETA).",
                "short",
                [Target(query(contract.QUEUE_SCHEDULED.series, QUEUE), "{{redis}}/{{framework}}/{{queue}}")],
            ),
            Panel(
                "timeseries",
                "Workers by group",
                "Live workers per worker group.",
                "short",
                [Target(query(contract.WORKERS.series), "{{redis}}/{{name}}")],
            ),
            Panel(
                "timeseries",
                "Stream pending entries",
                "Entries delivered to a consumer group but not acknowledged.",
                "short",
                [Target(query(contract.STREAM_GROUP_PENDING.series, QUEUE), "{{queue}}/{{group}}")],
            ),
            Panel(
                "timeseries",
                "Stream consumer lag",
                "Entries in the stream not yet delivered to each consumer group.",
                "short",
                [Target(query(contract.STREAM_GROUP_LAG.series, QUEUE), "{{queue}}/{{group}}")],
            ),
            _dlq_panel(t),
            Panel(
                "timeseries",
                "DLQ growth",
                "Entries each DLQ gained over the DLQEntriesIncreasing window; it fires from the red line.",
                "short",
                [Target(query(records.dlq_growth(t)), "{{redis}}/{{dlq}}")],
                steps("green", (t.dlq.increasing.threshold, "red")),
            ),
            Panel(
                "timeseries",
                "DLQ oldest entry age",
                "How long the oldest dead letter of each DLQ has waited.",
                "s",
                [Target(query(contract.DLQ_OLDEST_AGE.series), "{{redis}}/{{dlq}}")],
            ),
        ],
        [_link(OVERVIEW_UID, "Overview")],
        t.selector,
    )


DASHBOARDS = {"opsloop-overview.json": overview, "opsloop-queues.json": queues}
