"""The thresholds file: every number, duration and severity the rules and dashboards are made from.

The defaults ship with the package (``render/thresholds.yaml``, the same file as ``rules/thresholds.yaml``);
a user file is merged over them key by key, so an override lists only what it changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ConfigDict, Field, ValidationError, model_validator

from opsloop.configfile import ConfigError, StrictModel, describe_errors, load_model
from opsloop.durations import Duration

Severity = Literal["critical", "warning", "info"]


class Tier(StrictModel):
    """One severity tier of a tiered alert: fire above ``threshold`` held for ``for``."""

    threshold: float
    for_: Duration = Field(alias="for")


class Tiered(StrictModel):
    """A warning/critical pair; the warning threshold must be the lower one."""

    warning: Tier
    critical: Tier

    @model_validator(mode="after")
    def _ordered(self) -> Tiered:
        if self.warning.threshold >= self.critical.threshold:
            raise ValueError(
                f"warning threshold {self.warning.threshold:g} must be below "
                f"critical threshold {self.critical.threshold:g}"
            )
        return self


class Rule(StrictModel):
    """A single-severity alert: fire above ``threshold`` held for ``for``."""

    threshold: float = 0
    for_: Duration = Field(alias="for")
    severity: Severity


class WindowedRule(Rule):
    """A rule over a range: growth or errors within ``window``."""

    window: Duration


class Links(StrictModel):
    runbook_url: str
    grafana_url: str


class Queues(StrictModel):
    backlog: Tiered
    oldest_age: Tiered
    not_draining: WindowedRule
    no_workers: Rule
    keys_truncated: Rule


class Dlq(StrictModel):
    increasing: WindowedRule
    not_empty: Rule


class Cache(StrictModel):
    hit_ratio_low: Rule
    memory: Tiered
    evictions: Rule
    slow: Rule


class Sources(StrictModel):
    down: Rule
    exporter_down: Rule
    exporter_absent: Rule
    query_failing: WindowedRule
    query_stale: Rule


class BurnWindows(StrictModel):
    short_window: Duration
    long_window: Duration
    for_: Duration = Field(alias="for")

    @model_validator(mode="after")
    def _short_first(self) -> BurnWindows:
        if self.short_window >= self.long_window:
            raise ValueError("short_window must be shorter than long_window")
        return self


class JobFailures(StrictModel):
    """Failure ratio of finished jobs from a counter labelled by final status, alerted on two windows."""

    metric: str
    status_label: str
    failed_status: str
    max_ratio: float = Field(gt=0, lt=1)
    critical: BurnWindows
    warning: BurnWindows

    @model_validator(mode="after")
    def _critical_faster(self) -> JobFailures:
        if self.critical.long_window >= self.warning.long_window:
            raise ValueError("critical.long_window must be shorter than warning.long_window")
        return self

    @property
    def windows(self) -> list[float]:
        """Every rate window the tiers use, shortest first (each gets a recording rule)."""
        tiers = (self.critical, self.warning)
        return sorted({w for t in tiers for w in (t.short_window, t.long_window)})


class JobDuration(Rule):
    metric: str


class Business(StrictModel):
    job_failures: JobFailures
    job_duration: JobDuration


class Frameworks(StrictModel):
    stuck_in_progress: Rule


class ReceiverWatch(StrictModel):
    """The receiver's own alerts, over its own scrape job (``selector``), so a stuck receiver is seen."""

    enabled: bool
    """False where no opsloop receiver runs: its absence would otherwise page (the defaults say true)."""
    selector: str
    down: Rule
    absent: Rule
    webhooks_failing: WindowedRule
    delivery_stuck: Rule
    plan_backlog: Rule
    automation_paused: Rule
    guard_tripped: WindowedRule


class Thresholds(StrictModel):
    selector: str
    links: Links
    queues: Queues
    dlq: Dlq
    cache: Cache
    sources: Sources
    business: Business
    frameworks: Frameworks
    receiver: ReceiverWatch


class _Partial(StrictModel):
    """Any mapping: a partial override is only validated once merged over the defaults."""

    model_config = ConfigDict(extra="allow", frozen=True)


def default_path() -> Path:
    """The packaged defaults file."""
    return Path(__file__).with_name("thresholds.yaml")


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base``: mappings merge, anything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_thresholds(override: str | Path | None = None) -> Thresholds:
    """The defaults, with ``override`` merged over them; ConfigError names every problem."""
    if override is None:
        return load_model(default_path(), Thresholds)
    defaults = yaml.safe_load(default_path().read_text())
    user = load_model(override, _Partial).model_extra or {}
    try:
        return Thresholds.model_validate(merge(defaults, user))
    except ValidationError as exc:
        raise ConfigError(override, describe_errors(exc)) from exc
