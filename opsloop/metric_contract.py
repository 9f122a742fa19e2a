"""The exporter's metric contract: every metric name, type, help text and label set, declared once.

The exporter publishes these declarations, the renderer of rules and dashboards (``opsloop.render``)
writes its PromQL from them, and the tests compare them with the table in docs/metrics.md. This module
lives in the shared ``opsloop`` package and imports nothing but the standard library, so the renderer
reads the contract without importing the exporter's runtime (redis, psycopg, aiohttp); the direction is
``opsloop.metric_contract`` <- ``opsloop.exporter``, ``opsloop.render``.

Counters are declared without ``_total`` (prometheus-client adds it when it exposes them); ``series``
is the name a query uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Metric:
    """A metric: name (without ``_total`` for counters), type, help and label names."""

    name: str
    kind: Literal["gauge", "counter"]
    help: str
    labels: tuple[str, ...] = ()

    @property
    def series(self) -> str:
        """The name as Prometheus stores it (counters end in ``_total``)."""
        return f"{self.name}_total" if self.kind == "counter" else self.name


_QUEUE, _DLQ, _GROUP = ("redis", "queue"), ("redis", "dlq"), ("redis", "queue", "group")
_R, _S, _Q = ("redis",), ("source",), ("query",)

# -- queues: and dlqs: -----------------------------------------------------------------------------
QUEUE_LENGTH = Metric("opsloop_queue_length", "gauge", "Items in the queue (0 when the key does not exist).", _QUEUE)
QUEUE_OLDEST_AGE = Metric(
    "opsloop_queue_oldest_age_seconds", "gauge", "Age of the oldest item in the queue (0 when empty).", _QUEUE
)
STREAM_GROUP_PENDING = Metric(
    "opsloop_stream_group_pending", "gauge", "Entries delivered to the group but not acknowledged.", _GROUP
)
STREAM_GROUP_LAG = Metric(
    "opsloop_stream_group_lag", "gauge", "Entries in the stream not yet delivered to the group.", _GROUP
)
DLQ_LENGTH = Metric(
    "opsloop_dlq_length", "gauge", "Items in the dead-letter queue (0 when the key does not exist).", _DLQ
)
DLQ_OLDEST_AGE = Metric(
    "opsloop_dlq_oldest_age_seconds", "gauge", "Age of the oldest item in the dead-letter queue (0 when empty).", _DLQ
)
KEYS_TRUNCATED = Metric(
    "opsloop_keys_truncated", "gauge", "1 when SCAN discovery of the pattern stopped at max_keys_per_pattern, else 0.",
    ("redis", "pattern"),
)  # fmt: skip

# -- workers: --------------------------------------------------------------------------------------
WORKERS = Metric("opsloop_workers", "gauge", "Live workers in the group.", ("redis", "name"))
QUEUE_WORKERS = Metric(
    "opsloop_queue_workers", "gauge", "Live workers serving the queue (sum over groups that list it).", _QUEUE
)

# -- frameworks: the queue, DLQ and worker metrics with a framework label, and what they add -------
_FQ, _FD = (*_QUEUE, "framework"), ("redis", "dlq", "queue", "framework")


def _with_labels(metric: Metric, labels: tuple[str, ...]) -> Metric:
    """The same metric as published by framework queues, under their label set."""
    return Metric(metric.name, metric.kind, metric.help, labels)


FRAMEWORK_QUEUE_LENGTH = _with_labels(QUEUE_LENGTH, _FQ)
FRAMEWORK_QUEUE_OLDEST_AGE = _with_labels(QUEUE_OLDEST_AGE, _FQ)
FRAMEWORK_QUEUE_WORKERS = _with_labels(QUEUE_WORKERS, _FQ)
FRAMEWORK_DLQ_LENGTH = _with_labels(DLQ_LENGTH, _FD)
FRAMEWORK_DLQ_OLDEST_AGE = _with_labels(DLQ_OLDEST_AGE, _FD)
QUEUE_IN_PROGRESS = Metric(
    "opsloop_queue_in_progress", "gauge", "Jobs a worker has taken and not finished (started, unacked, running).", _FQ
)
QUEUE_IN_PROGRESS_OVERDUE = Metric(
    "opsloop_queue_in_progress_overdue", "gauge",
    "Jobs in progress past their deadline: RQ execution heartbeat expired, Celery unacked past the visibility"
    " timeout.", _FQ,
)  # fmt: skip
QUEUE_SCHEDULED = Metric(
    "opsloop_queue_scheduled", "gauge", "Jobs waiting for a time in the future (scheduled, delayed, ETA).", _FQ
)
QUEUE_UNREADABLE_RECORDS = Metric(
    "opsloop_queue_unreadable_records", "gauge",
    "Job records followed this scrape that were missing or not in the framework's format.", _FQ,
)  # fmt: skip

# -- cache: ----------------------------------------------------------------------------------------
CACHE_HITS = Metric("opsloop_cache_hits", "counter", "Successful key lookups (INFO keyspace_hits).", _R)
CACHE_MISSES = Metric("opsloop_cache_misses", "counter", "Failed key lookups (INFO keyspace_misses).", _R)
CACHE_EVICTED_KEYS = Metric("opsloop_cache_evicted_keys", "counter", "Keys evicted by maxmemory policy.", _R)
CACHE_EXPIRED_KEYS = Metric("opsloop_cache_expired_keys", "counter", "Keys removed on TTL expiry.", _R)
CACHE_MEMORY_USED = Metric("opsloop_cache_memory_used_bytes", "gauge", "Memory used by Redis.", _R)
CACHE_MEMORY_MAX = Metric("opsloop_cache_memory_max_bytes", "gauge", "maxmemory setting; 0 means no limit.", _R)
CACHE_CLIENTS = Metric("opsloop_cache_connected_clients", "gauge", "Client connections.", _R)
CACHE_PING = Metric("opsloop_cache_ping_seconds", "gauge", "Round trip of a PING to Redis.", _R)
OWN_HITS = Metric(
    "opsloop_exporter_keyspace_hits", "counter",
    "Keyspace hits caused by the exporter's own reads; included in opsloop_cache_hits_total.", _R,
)  # fmt: skip
OWN_MISSES = Metric(
    "opsloop_exporter_keyspace_misses", "counter",
    "Keyspace misses caused by the exporter's own reads; included in opsloop_cache_misses_total.", _R,
)  # fmt: skip

# -- business: -------------------------------------------------------------------------------------
QUERY_RESULT_AGE = Metric(
    "opsloop_business_query_result_age_seconds", "gauge", "Seconds since the query's served result was fetched.", _Q
)
QUERY_ERRORS = Metric("opsloop_business_query_errors", "counter", "Failed runs of the query.", _Q)
QUERY_DURATION = Metric(
    "opsloop_business_query_duration_seconds", "gauge", "Duration of the query's last successful run.", _Q
)

# -- the exporter itself ---------------------------------------------------------------------------
SOURCE_UP = Metric("opsloop_source_up", "gauge", "1 when the last read of the source succeeded in time.", _S)
SOURCE_DURATION = Metric(
    "opsloop_source_scrape_duration_seconds", "gauge", "Duration of the source's last completed read.", _S
)
SOURCE_LAST_SUCCESS = Metric(
    "opsloop_source_last_success_timestamp_seconds", "gauge", "Unix time of the source's last good read.", _S
)
SOURCE_ERRORS = Metric("opsloop_source_errors", "counter", "Failed or timed-out reads of the source.", _S)
BREAKER_OPEN = Metric("opsloop_source_breaker_open", "gauge", "1 while the source's circuit breaker skips reads.", _S)
BUILD_INFO = Metric("opsloop_exporter_build_info", "gauge", "Always 1; the version is a label.", ("version",))
OPSLOOP_BUILD_INFO = Metric(
    "opsloop_build_info", "gauge", "Always 1; the labels say which build of opsloop is running.",
    ("version", "revision", "pythonversion"),
)  # fmt: skip
REDIS_NODE_UP = Metric(
    "opsloop_redis_node_up", "gauge", "1 when the cluster node answered the last read in time.", ("redis", "node")
)
REDIS_NODE_ERRORS = Metric(
    "opsloop_redis_node_errors", "counter", "Reads of the cluster node that failed or timed out.", ("redis", "node")
)

CONTRACT: tuple[Metric, ...] = tuple(value for value in tuple(globals().values()) if isinstance(value, Metric))
"""Every declaration above, in order; a name published under two label sets (hand-configured and
framework queues) has one declaration for each."""


# -- families named by configuration ---------------------------------------------------------------
_FIELD = re.compile(r"[^a-zA-Z0-9_]")


def business_metric(
    query: str, value: str, kind: Literal["gauge", "counter"], help: str, labels: tuple[str, ...]
) -> Metric:
    """``opsloop_business_<query>_<value>``: one value column of a configured query."""
    return Metric(f"opsloop_business_{query}_{value}", kind, help, labels)


def app_cache_metric(field: str) -> Metric:
    """``opsloop_app_cache_<field>_total{redis,cache}``: one numeric field of an application's stats hash."""
    name = _FIELD.sub("_", field).lower().removesuffix("_total")
    return Metric(
        f"opsloop_app_cache_{name}", "counter", f"Application cache counter {field!r} from its stats hash.",
        ("redis", "cache"),
    )  # fmt: skip
