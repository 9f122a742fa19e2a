"""Recording rules (``level:metric:operations``) shared by the alerts and the dashboards."""

from __future__ import annotations

from dataclasses import dataclass

from opsloop.render.formats import duration
from opsloop.render.promql import series
from opsloop.render.thresholds import Thresholds

from opsloop import metric_contract as contract

REDIS_LEVEL = "job, instance, redis"
INSTANCE_LEVEL = "job, instance"


@dataclass(frozen=True)
class Record:
    record: str
    expr: str


@dataclass(frozen=True)
class RecordGroup:
    name: str
    rules: list[Record]


def queue_growth(t: Thresholds) -> str:
    """Items per second a queue grows by, averaged over the not-draining window."""
    return f"queue:{contract.QUEUE_LENGTH.series}:deriv{duration(t.queues.not_draining.window)}"


def dlq_growth(t: Thresholds) -> str:
    """Entries a DLQ gained over the increasing window (negative once drained)."""
    return f"dlq:{contract.DLQ_LENGTH.series}:delta{duration(t.dlq.increasing.window)}"


CACHE_HIT_RATIO = "redis:opsloop_cache_hit:ratio_rate5m"
CACHE_MEMORY_RATIO = "redis:opsloop_cache_memory:usage_ratio"
CACHE_EVICTIONS = "redis:opsloop_cache_evicted_keys:rate5m"


def jobs_finished(window: float) -> str:
    return f"instance:opsloop_jobs_finished:rate{duration(window)}"


def job_failure_ratio(window: float) -> str:
    return f"instance:opsloop_job_failures:ratio_rate{duration(window)}"


def _redis_rate(t: Thresholds, name: str, counter: str) -> Record:
    return Record(name, f"sum by ({REDIS_LEVEL}) (rate({series(counter, t.selector)}[5m]))")


def _app_rate(t: Thresholds, name: str, counter: str, own: str) -> Record:
    """A keyspace counter's rate without the exporter's own reads (kept whole where those are missing)."""
    total = f"sum by ({REDIS_LEVEL}) (rate({series(counter, t.selector)}[5m]))"
    mine = f"sum by ({REDIS_LEVEL}) (rate({series(own, t.selector)}[5m]))"
    return Record(name, f"clamp_min({total} - {mine}, 0)\nor {total}")


def record_groups(t: Thresholds) -> list[RecordGroup]:
    queues = t.queues.not_draining.window
    dlq = t.dlq.increasing.window
    hits, misses = "redis:opsloop_cache_hits:rate5m", "redis:opsloop_cache_misses:rate5m"
    jobs = t.business.job_failures
    failed = f'{jobs.status_label}="{jobs.failed_status}"'
    job_rules: list[Record] = []
    for window in jobs.windows:
        rng = duration(window)
        job_rules += [
            Record(
                jobs_finished(window), f"sum by ({INSTANCE_LEVEL}) (rate({series(jobs.metric, t.selector)}[{rng}]))"
            ),
            Record(
                job_failure_ratio(window),
                f"sum by ({INSTANCE_LEVEL}) (rate({series(jobs.metric, t.selector, failed)}[{rng}]))\n"
                f"/ {series(jobs_finished(window), t.selector)}",
            ),
        ]
    queue_length, dlq_length = (
        series(contract.QUEUE_LENGTH.series, t.selector),
        series(contract.DLQ_LENGTH.series, t.selector),
    )
    return [
        RecordGroup(
            "opsloop-queues.records",
            [
                Record(queue_growth(t), f"deriv({queue_length}[{duration(queues)}])"),
                Record(dlq_growth(t), f"delta({dlq_length}[{duration(dlq)}])"),
            ],
        ),
        RecordGroup(
            "opsloop-cache.records",
            [
                _app_rate(t, hits, contract.CACHE_HITS.series, contract.OWN_HITS.series),
                _app_rate(t, misses, contract.CACHE_MISSES.series, contract.OWN_MISSES.series),
                Record(
                    CACHE_HIT_RATIO,
                    f"{series(hits, t.selector)}\n/ ({series(hits, t.selector)} + {series(misses, t.selector)})",
                ),
                _redis_rate(t, CACHE_EVICTIONS, contract.CACHE_EVICTED_KEYS.series),
                Record(
                    CACHE_MEMORY_RATIO,
                    f"{series(contract.CACHE_MEMORY_USED.series, t.selector)}\n"
                    f"/ ({series(contract.CACHE_MEMORY_MAX.series, t.selector)} > 0)",
                ),
            ],
        ),
        RecordGroup("opsloop-jobs.records", job_rules),
    ]
