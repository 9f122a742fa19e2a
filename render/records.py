"""Recording rules (``level:metric:operations``) shared by the alerts and the dashboards."""

from __future__ import annotations

from dataclasses import dataclass

from opsloop.render.formats import duration
from opsloop.render.promql import series
from opsloop.render.thresholds import Thresholds

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
    return f"queue:opsloop_queue_length:deriv{duration(t.queues.not_draining.window)}"


def dlq_growth(t: Thresholds) -> str:
    """Entries a DLQ gained over the increasing window (negative once drained)."""
    return f"dlq:opsloop_dlq_length:delta{duration(t.dlq.increasing.window)}"


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
    return [
        RecordGroup(
            "opsloop-queues.records",
            [
                Record(queue_growth(t), f"deriv({series('opsloop_queue_length', t.selector)}[{duration(queues)}])"),
                Record(dlq_growth(t), f"delta({series('opsloop_dlq_length', t.selector)}[{duration(dlq)}])"),
            ],
        ),
        RecordGroup(
            "opsloop-cache.records",
            [
                _app_rate(t, hits, "opsloop_cache_hits_total", "opsloop_exporter_keyspace_hits_total"),
                _app_rate(t, misses, "opsloop_cache_misses_total", "opsloop_exporter_keyspace_misses_total"),
                Record(
                    CACHE_HIT_RATIO,
                    f"{series(hits, t.selector)}\n/ ({series(hits, t.selector)} + {series(misses, t.selector)})",
                ),
                _redis_rate(t, CACHE_EVICTIONS, "opsloop_cache_evicted_keys_total"),
                Record(
                    CACHE_MEMORY_RATIO,
                    f"{series('opsloop_cache_memory_used_bytes', t.selector)}\n"
                    f"/ ({series('opsloop_cache_memory_max_bytes', t.selector)} > 0)",
                ),
            ],
        ),
        RecordGroup("opsloop-jobs.records", job_rules),
    ]
