"""The exporter's configuration: pydantic models, cross-reference checks and ``load_config``.

Each top-level section maps to one module under ``sources/``: ``queues`` to ``redis_queues.py``,
``dlqs`` to ``redis_dlq.py``, ``workers`` to ``redis_workers.py``, ``cache`` to ``redis_cache.py``,
``frameworks`` to ``sources/frameworks/``,
``business`` to ``postgres_sql.py``. Unknown keys are errors; every problem is reported with its key path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from opsloop.configfile import StrictModel, exactly_one, load_model
from opsloop.durations import Duration
from opsloop.redis_connect import effective_mode
from opsloop.redis_topology import RedisTopology
from opsloop.secrets import OptionalSecret, Secret, SecretEnv, SecretFile, SecretsModel

_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _metric_part(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{value!r} is not a valid metric name part (letters, digits, underscore)")
    return value


class ScrapeConfig(StrictModel):
    default_timeout: Duration = 10.0
    """Deadline when Prometheus sends no X-Prometheus-Scrape-Timeout-Seconds header."""
    timeout_margin: Duration = 0.5
    """Subtracted from Prometheus' timeout so the answer arrives before Prometheus gives up."""
    breaker_failures: int = Field(3, ge=1)
    """Consecutive failures that open a source's circuit breaker."""
    breaker_max_backoff: Duration = 30.0
    """Longest pause of an open breaker (exponential with jitter from 1 s)."""


class RedisConfig(RedisTopology):
    name: str = Field(min_length=1)
    url: str | None = Field(None, pattern=r"^(redis|rediss|unix|redis\+cluster|rediss\+cluster)://")
    """The server (standalone), one seed node (cluster); optional with sentinels (credentials, database)."""
    password: OptionalSecret = None
    password_env: SecretEnv = None
    password_file: SecretFile = None
    connect_timeout: Duration = 2.0
    node_timeout: Duration = 3.0
    """Cluster and sentinel: how long one node may take to answer before its keys are reported unread."""
    discovery_interval: Duration = 30.0
    """How often SCAN discovery of patterns runs; scrapes in between use the cached key list."""
    max_keys_per_pattern: int = Field(100_000, ge=1)
    """Bounds memory: 100,000 list keys peak at about 60 MiB RSS during a scrape (benchmarks/README.md)."""
    forget_after: Duration = 3600.0
    """How long a discovered key that Redis deleted (an emptied list) keeps reading 0 before it is dropped."""

    def topology_url(self) -> str | None:
        return self.url

    def resolve_password(self) -> str | None:
        return self.secret("password")


class OldestAgeConfig(StrictModel):
    field: str = Field(min_length=1)
    """JSON field holding the enqueue time: unix seconds or milliseconds, or an ISO 8601 string."""
    end: Literal["right", "left"] = "right"
    """Where the oldest item sits: "right" when producers LPUSH and consumers RPOP (the default)."""


class KeyConfig(StrictModel):
    """One queue or DLQ: a fixed ``key`` or a SCAN ``pattern``."""

    name: str | None = None
    redis: str
    key: str | None = None
    pattern: str | None = None
    oldest_age: OldestAgeConfig | None = None

    @model_validator(mode="after")
    def _key_or_pattern(self) -> Self:
        exactly_one(key=self.key, pattern=self.pattern)
        if self.pattern is not None and self.name is not None:
            raise ValueError("name applies to a fixed key; a pattern labels each key with the key itself")
        return self


class CacheConfig(StrictModel):
    redis: str
    app_stats_pattern: str | None = None
    """Hashes of counters the application writes (hits, misses, l1_hits, ...)."""


class WorkersConfig(StrictModel):
    redis: str
    name: str = Field(min_length=1)
    set: str | None = None
    heartbeat_pattern: str | None = None
    queues: list[str] = []
    """Queue labels this worker group serves: adds opsloop_queue_workers{queue} for each."""

    @model_validator(mode="after")
    def _set_or_heartbeat(self) -> Self:
        exactly_one(set=self.set, heartbeat_pattern=self.heartbeat_pattern)
        return self


class FrameworkConfig(StrictModel):
    """One task framework's queues on one Redis, read in the framework's own key layout (docs/frameworks.md)."""

    redis: str
    kind: Literal["rq", "dramatiq", "celery", "arq"]
    queues: list[str] = []
    """Queue names; empty reads every queue RQ lists in ``rq:queues`` or Dramatiq's keys show (required for
    Celery and arq, which keep no queue registry)."""
    prefix: str | None = None
    """RQ's key prefix (default ``rq:``) or kombu's ``global_keyprefix`` for Celery (default none)."""
    namespace: str | None = None
    """Dramatiq's broker namespace (default ``dramatiq``)."""
    visibility_timeout: Duration = 3600.0
    """Celery: an unacked task older than this is overdue (kombu's default visibility timeout)."""
    priority_steps: list[int] = Field(default_factory=lambda: [0, 3, 6, 9])
    """Celery: kombu's priority steps; each non-zero step is its own list ``<queue>\\x06\\x16<step>``."""

    @model_validator(mode="after")
    def _fits_kind(self) -> Self:
        if self.kind in ("celery", "arq") and not self.queues:
            raise ValueError(f"{self.kind} keeps no queue registry in Redis: list its queues")
        if self.namespace is not None and self.kind != "dramatiq":
            raise ValueError("namespace applies to kind: dramatiq only")
        if self.prefix is not None and self.kind not in ("rq", "celery"):
            raise ValueError("prefix applies to kind: rq or celery only")
        celery_only = sorted({"visibility_timeout", "priority_steps"} & self.model_fields_set)
        if celery_only and self.kind != "celery":
            raise ValueError(f"{', '.join(celery_only)} applies to kind: celery only")
        return self


class ValueConfig(StrictModel):
    type: Literal["gauge", "counter"] = "gauge"
    help: str = Field(min_length=1)


class QueryConfig(StrictModel):
    name: str
    sql: str = Field(min_length=1)
    labels: list[str] = []
    values: dict[str, ValueConfig] = Field(min_length=1)
    interval: Duration = 60.0
    timeout: Duration = 5.0

    @field_validator("name")
    @classmethod
    def _query_name(cls, name: str) -> str:
        return _metric_part(name)

    @field_validator("labels")
    @classmethod
    def _label_names(cls, labels: list[str]) -> list[str]:
        for label in labels:
            if not _LABEL.match(label) or label.startswith("__"):
                raise ValueError(f"{label!r} is not a valid label name")
        if len(set(labels)) != len(labels):
            raise ValueError("label columns must be unique")
        return labels

    @field_validator("values")
    @classmethod
    def _value_names(cls, values: dict[str, ValueConfig]) -> dict[str, ValueConfig]:
        for name in values:
            _metric_part(name)
        return values

    @model_validator(mode="after")
    def _disjoint(self) -> Self:
        overlap = set(self.labels) & set(self.values)
        if overlap:
            raise ValueError(f"columns cannot be both label and value: {', '.join(sorted(overlap))}")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        return self


class BusinessConfig(SecretsModel):
    dsn: Secret = None
    dsn_env: SecretEnv = None
    dsn_file: SecretFile = None
    pool_size: int = Field(2, ge=1, le=20)
    connect_timeout: Duration = 3.0
    queries: list[QueryConfig] = []

    @model_validator(mode="after")
    def _unique_queries(self) -> Self:
        names = [q.name for q in self.queries]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"query names must be unique: {', '.join(dupes)}")
        return self


class ExporterConfig(StrictModel):
    scrape: ScrapeConfig = ScrapeConfig()
    redis: list[RedisConfig] = []
    queues: list[KeyConfig] = []
    dlqs: list[KeyConfig] = []
    cache: list[CacheConfig] = []
    workers: list[WorkersConfig] = []
    frameworks: list[FrameworkConfig] = []
    business: BusinessConfig | None = None

    def redis_by_name(self, name: str) -> RedisConfig:
        return next(r for r in self.redis if r.name == name)


def _cross_reference_problems(config: ExporterConfig) -> list[str]:
    """Checks that span sections: names that must exist and be unique."""
    problems: list[str] = []
    names = [r.name for r in config.redis]
    for dupe in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"redis: name {dupe!r} is used more than once")
    sections: list[tuple[str, list[KeyConfig] | list[CacheConfig] | list[WorkersConfig] | list[FrameworkConfig]]] = [
        ("queues", config.queues), ("dlqs", config.dlqs), ("cache", config.cache), ("workers", config.workers),
        ("frameworks", config.frameworks),
    ]  # fmt: skip
    for section, entries in sections:
        for i, entry in enumerate(entries):
            if entry.redis not in names:
                problems.append(f"{section}[{i}].redis: no redis entry is named {entry.redis!r}")
    clusters = {r.name for r in config.redis if effective_mode(r, r.url) == "cluster"}
    for i, framework in enumerate(config.frameworks):
        if framework.redis in clusters:
            problems.append(
                f"frameworks[{i}].redis: {framework.redis!r} is a Redis Cluster; framework scripts derive key names"
                " inside Redis, which a cluster refuses (use a standalone Redis or a Sentinel-managed primary)"
            )
    for i, redis in enumerate(config.redis):
        if redis.url is None and effective_mode(redis, None) != "sentinel":
            problems.append(f"redis[{i}].url: required key is missing (optional only with mode: sentinel)")
    return problems


def load_config(path: str | Path) -> ExporterConfig:
    """Read, validate and cross-check the YAML file; raise ConfigError listing every problem."""
    return load_model(path, ExporterConfig, _cross_reference_problems)
