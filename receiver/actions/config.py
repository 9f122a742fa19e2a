"""Config models of the built-in recovery actions, one per ``type``, all checked when the config loads.

Templates (``{name}`` placeholders) are validated here, so a plan cannot load with a malformed one, and
each model reports the placeholders it uses (``template_fields``) so the core can check that every name
comes from a validated label or a named group of the plan's regex.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterator
from typing import Annotated, Literal
from urllib.parse import urlsplit

from opsloop.receiver.actions.placeholders import Template, check_template, placeholder_names
from pydantic import ConfigDict, Field, JsonValue, field_validator, model_validator

from opsloop.configfile import StrictModel
from opsloop.durations import Duration
from opsloop.redis_connect import URL_SCHEMES
from opsloop.redis_topology import RedisTopology
from opsloop.secrets import OptionalPassword, OptionalSecret, Secret, SecretEnv, SecretFile, SecretsModel

PositiveDuration = Annotated[Duration, Field(gt=0)]


class ActionBaseConfig(StrictModel, abc.ABC):
    """Keys every action has: a hard time limit and a dry-run switch."""

    timeout: PositiveDuration = 10.0
    dry_run: bool = False

    @abc.abstractmethod
    def template_fields(self) -> set[str]:
        """Every ``{name}`` this action's templates use."""


class SecretValue(SecretsModel):
    """A header value given inline, by environment variable or by file (exactly one)."""

    value: Secret = None
    value_env: SecretEnv = None
    value_file: SecretFile = None


class RedisActionConfig(ActionBaseConfig, RedisTopology, OptionalPassword):
    """Where a Redis action connects: a URL (which may carry credentials), an optional password, and
    for a cluster or a Sentinel set the topology keys of ``opsloop.redis_topology``."""

    redis: OptionalSecret = None
    redis_env: SecretEnv = None
    redis_file: SecretFile = None

    @field_validator("redis")
    @classmethod
    def _redis_url(cls, url: str | None) -> str | None:
        if url is not None and urlsplit(url).scheme not in URL_SCHEMES:
            raise ValueError("expected a redis://, rediss://, unix:// or redis+cluster:// URL")
        return url

    def topology_url(self) -> str | None:
        return self.redis

    @model_validator(mode="after")
    def _url_unless_sentinel(self) -> RedisActionConfig:
        if self.mode != "sentinel":  # with sentinels the URL is optional: it only carries credentials and db
            self.require_secret("redis")
        return self


class DlqRequeueConfig(RedisActionConfig):
    """Move items from a dead-letter list (or sorted set) back to the queue they came from."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    type: Literal["dlq_requeue"]
    from_: Template = Field(alias="from")
    to: Template
    max_items: int = Field(default=100, ge=1)
    batch: int = Field(default=100, ge=1, le=10_000)
    rate: float | None = Field(default=None, gt=0)
    position: Literal["consumer_end", "producer_end"] = "consumer_end"

    @model_validator(mode="after")
    def _distinct(self) -> DlqRequeueConfig:
        if self.from_ == self.to:
            raise ValueError("from and to must name different keys")
        return self

    def template_fields(self) -> set[str]:
        return placeholder_names(self.from_) | placeholder_names(self.to)


Framework = Literal["rq", "dramatiq", "celery", "list"]
NOT_ON_CLUSTER = "framework scripts derive key names inside Redis, which a Redis Cluster refuses"


class FailedJobsConfig(RedisActionConfig):
    """Keys shared by ``requeue_failed`` and ``purge_failed``: which framework, which queue, how many."""

    framework: Framework
    queue: Template
    """The framework's queue name (RQ, Dramatiq, Celery) or, for ``list``, the queue's key."""
    dlq: Template | None = None
    """The dead-letter list for ``celery`` and ``list`` (those keep none of their own)."""
    prefix: str | None = None
    """RQ's key prefix (default ``rq:``) or kombu's ``global_keyprefix`` for Celery (default none)."""
    namespace: str = "dramatiq"
    max_items: int = Field(default=100, ge=1)

    @model_validator(mode="after")
    def _dlq_where_needed(self) -> FailedJobsConfig:
        if self.effective_mode(self.redis) == "cluster":
            raise ValueError(f"{NOT_ON_CLUSTER}; use a standalone Redis or a Sentinel-managed primary")
        if self.framework in ("celery", "list") and self.dlq is None:
            raise ValueError(f"framework {self.framework} keeps no dead letters of its own: set dlq")
        if self.framework in ("rq", "dramatiq") and self.dlq is not None:
            raise ValueError(f"framework {self.framework} has its own failed registry: dlq does not apply")
        return self

    @property
    def key_prefix(self) -> str:
        default = "rq:" if self.framework == "rq" else ""
        return self.prefix if self.prefix is not None else default

    def template_fields(self) -> set[str]:
        return placeholder_names(self.queue) | (placeholder_names(self.dlq) if self.dlq else set())


class RequeueFailedConfig(FailedJobsConfig):
    """Put failed jobs back on their queue the way the framework itself would (docs/actions.md)."""

    type: Literal["requeue_failed"]


class PurgeFailedConfig(FailedJobsConfig):
    """Delete dead jobs that failed longer than ``older_than`` ago, at most ``max_items`` per run."""

    type: Literal["purge_failed"]
    older_than: PositiveDuration

    @model_validator(mode="after")
    def _timed_framework(self) -> PurgeFailedConfig:
        if self.framework not in ("rq", "dramatiq"):
            raise ValueError("purge_failed needs failure times: framework rq or dramatiq")
        return self


GLOB_SPECIAL = frozenset("*?[]\\")
"""Characters with a meaning in a Redis MATCH pattern."""


class CacheClearConfig(RedisActionConfig):
    """Delete keys matching a glob pattern with SCAN + UNLINK, capped at ``max_keys``."""

    type: Literal["cache_clear"]
    pattern: Template
    max_keys: int = Field(default=10_000, ge=1)
    batch: int = Field(default=500, ge=1, le=10_000)

    @field_validator("pattern")
    @classmethod
    def _literal_prefix(cls, pattern: str) -> str:
        if not pattern or pattern[0] in GLOB_SPECIAL | {"{"}:
            raise ValueError("the pattern must start with a literal key prefix such as cache:")
        return pattern

    def template_fields(self) -> set[str]:
        return placeholder_names(self.pattern)


class RedisSetConfig(RedisActionConfig):
    """SET a key (a feature flag or maintenance switch) that expires after ``ttl``."""

    type: Literal["redis_set"]
    key: Template
    value: Template
    ttl: PositiveDuration

    def template_fields(self) -> set[str]:
        return placeholder_names(self.key) | placeholder_names(self.value)


def json_strings(value: JsonValue) -> Iterator[str]:
    """Every string value (not key) inside a JSON-like structure."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from json_strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from json_strings(item)


class HttpConfig(ActionBaseConfig):
    """Call a hook (restart, scale, failover) and check the status code."""

    type: Literal["http"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: Template
    headers: dict[str, str | SecretValue] = Field(default_factory=dict)
    body: JsonValue = None
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("expected an http:// or https:// URL")
        if "{" in parts.netloc:
            raise ValueError("placeholders may appear in the path and query, not in the host")
        return url

    @field_validator("body")
    @classmethod
    def _body(cls, body: JsonValue) -> JsonValue:
        for text in json_strings(body):
            check_template(text)
        return body

    def template_fields(self) -> set[str]:
        names = placeholder_names(self.url)
        for text in json_strings(self.body):
            names |= placeholder_names(text)
        return names


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class CommandConfig(ActionBaseConfig):
    """Run a program from an argv list, never through a shell."""

    type: Literal["command"]
    argv: list[Template] = Field(min_length=1)
    env: dict[str, Template] = Field(default_factory=dict)
    pass_env: list[str] = Field(default_factory=lambda: ["PATH", "HOME", "LANG"])
    cwd: str | None = None

    @field_validator("argv")
    @classmethod
    def _fixed_program(cls, argv: list[str]) -> list[str]:
        if placeholder_names(argv[0]):
            raise ValueError("the program (argv[0]) cannot contain placeholders")
        return argv

    @field_validator("env", "pass_env")
    @classmethod
    def _env_names(cls, names: dict[str, str] | list[str]) -> dict[str, str] | list[str]:
        bad = [name for name in names if not _ENV_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"invalid environment variable name(s): {', '.join(bad)}")
        return names

    def template_fields(self) -> set[str]:
        names: set[str] = set()
        for template in [*self.argv, *self.env.values()]:
            names |= placeholder_names(template)
        return names


_SQL_PERCENT = re.compile(r"%%|%\((\w+)\)[sbt]|%")


def bind_names(statement: str) -> set[str]:
    """Names of the ``%(name)s`` bind parameters of a statement; any other ``%`` use is an error."""
    names: set[str] = set()
    for match in _SQL_PERCENT.finditer(statement):
        if match.group(0) == "%":
            raise ValueError("use %(name)s bind parameters; write %% for a literal %")
        if match.group(1):
            names.add(match.group(1))
    return names


class SqlConfig(ActionBaseConfig, SecretsModel):
    """Run one statement from config, label values bound as parameters."""

    type: Literal["sql"]
    name: str = "statement"
    dsn: Secret = None
    dsn_env: SecretEnv = None
    dsn_file: SecretFile = None
    statement: str = Field(min_length=1)

    @field_validator("statement")
    @classmethod
    def _statement(cls, statement: str) -> str:
        bind_names(statement)
        return statement

    def template_fields(self) -> set[str]:
        return bind_names(self.statement)


ActionConfig = Annotated[
    DlqRequeueConfig
    | CacheClearConfig
    | RedisSetConfig
    | HttpConfig
    | CommandConfig
    | SqlConfig
    | RequeueFailedConfig
    | PurgeFailedConfig,
    Field(discriminator="type"),
]
"""One entry of a recovery plan's ``actions`` list, chosen by its ``type`` key."""
