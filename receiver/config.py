"""The receiver's configuration file: auth, store, routes, recovery plans, notifiers and limits.

Each section validates itself (key paths in errors come from pydantic); ``load_config`` then checks
what spans sections: routes and plans name existing notifiers, and every ``{placeholder}`` a plan uses
is a label its ``labels:`` section validates, or a named group of one of those patterns.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, cast

from opsloop.receiver.actions import template_fields
from opsloop.receiver.actions.config import ActionConfig
from opsloop.receiver.console.config import ConsoleConfig
from opsloop.receiver.matchers import Matcher, parse_matchers
from opsloop.receiver.notify import notifier_problems
from opsloop.receiver.notify.config import NotifiersConfig
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)

from opsloop.configfile import StrictModel, describe_errors, key_path, load_model
from opsloop.durations import Duration, parse_duration
from opsloop.secrets import OptionalSecret, Secret, SecretEnv, SecretFile, SecretsModel, secret_keys

DEFAULT_STORE = "sqlite:///var/lib/opsloop/receiver.db"
DEFAULT_LISTEN = "127.0.0.1:9818"
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc
    return pattern


Pattern = Annotated[str, AfterValidator(_compiles)]

MatcherEntry = Annotated[tuple[Matcher, ...], BeforeValidator(parse_matchers)]
"""One ``matchers:`` string, which (as in Alertmanager) may hold several: ``{a="b", c=~"d"}``."""


def _matcher_list(value: object) -> object:
    """``matchers:`` is a list of strings, as in Alertmanager; a single string is taken as a list of one."""
    return [value] if isinstance(value, str) else value


Matchers = Annotated[list[MatcherEntry], BeforeValidator(_matcher_list)]


class Matching(StrictModel):
    """Which alerts a route or plan takes: the ``match:`` equality map and Alertmanager ``matchers:``, all ANDed."""

    match: dict[str, str] = {}
    matchers: Matchers = []

    model_config = StrictModel.model_config | {"arbitrary_types_allowed": True}

    def all_matchers(self) -> tuple[Matcher, ...]:
        return tuple(m for entry in self.matchers for m in entry)


class BasicAuth(SecretsModel):
    username: str = Field(min_length=1)
    password: Secret = None
    password_env: SecretEnv = None
    password_file: SecretFile = None


class AuthConfig(SecretsModel):
    """How Alertmanager authenticates to ``POST /alerts``: a bearer token or basic auth, not both."""

    bearer_token: OptionalSecret = None
    bearer_token_env: SecretEnv = None
    bearer_token_file: SecretFile = None
    basic_auth: BasicAuth | None = None

    @model_validator(mode="after")
    def _one_method(self) -> AuthConfig:
        keys = secret_keys("bearer_token")
        given = sum(getattr(self, key) is not None for key in keys)
        if given > 1 or (given == 0) == (self.basic_auth is None):
            raise ValueError(f"set exactly one of {', '.join(keys)}, basic_auth")
        return self


class AdminConfig(SecretsModel):
    """The admin API's own bearer token, separate from the webhook's credentials."""

    token: Secret = None
    token_env: SecretEnv = None
    token_file: SecretFile = None


class Route(Matching):
    notify: list[str] = Field(min_length=1)
    continue_: bool = Field(False, alias="continue")
    group_window: Duration = Field(5.0, ge=0, le=3600)
    """How long a message about an Alertmanager group waits for more alerts of that group."""

    model_config = Matching.model_config | {"populate_by_name": True}


class MaxRuns(StrictModel):
    per_hour: int | None = Field(None, ge=1)
    per_day: int | None = Field(None, ge=1)


class StormGuard(StrictModel):
    """More than ``max_runs`` runs of one plan within ``window`` pause that plan and tell a human once."""

    max_runs: int = Field(10, ge=1)
    window: Duration = 600.0


class Stage(float):
    """A stage's offset from the run's first attempt in seconds (a number, as before), which may also
    require a person's approval before the stage's actions run."""

    def __new__(cls, after: float, approve: str = "none", approve_timeout: float = 3600.0) -> Stage:
        stage = super().__new__(cls, after)
        stage.approve = approve
        stage.approve_timeout = approve_timeout
        return stage

    approve: str
    approve_timeout: float

    @property
    def needs_approval(self) -> bool:
        return self.approve == "required"


class StageSpec(StrictModel):
    """A stage written as a mapping: ``{after: 5m, approve: required, approve_timeout: 15m}``."""

    after: Duration = 0.0
    approve: Literal["required", "none"] = "none"
    approve_timeout: Duration = Field(3600.0, gt=0)


def _stage(value: object) -> Stage:
    if isinstance(value, Stage):
        return value
    if isinstance(value, dict):
        try:
            spec = StageSpec.model_validate(value)
        except ValidationError as exc:
            raise ValueError("; ".join(describe_errors(exc))) from None
        return Stage(spec.after, spec.approve, spec.approve_timeout)
    return Stage(parse_duration(value))


StageValue = Annotated[float, PlainValidator(_stage)]


class Plan(Matching):
    """A recovery plan: which alerts it takes, what it does at each stage, and how it proves success."""

    name: str = Field(pattern=NAME_PATTERN)
    labels: dict[str, Pattern] = {}
    actions: list[ActionConfig] = Field(min_length=1)
    stages: list[StageValue] = Field(default_factory=lambda: [Stage(0.0)], min_length=1)
    verify: str | None = None
    verify_after: Duration = 30.0
    cooldown: Duration = 0.0
    max_runs: MaxRuns = MaxRuns()
    storm_guard: StormGuard | None = StormGuard()
    """None (``storm_guard: null``) turns the plan's storm guard off; the circuit breaker still applies."""
    max_concurrent: int | None = Field(None, ge=1)
    """Runs of this plan in progress at once (a run waiting for approval counts); more wait for a place."""
    escalate: list[str] = []
    notify_recovered: list[str] = []
    notify_firing: bool = True
    """False: the routes hear of the alert only if the plan is skipped or escalates (repair first)."""
    dry_run: bool = False

    @model_validator(mode="after")
    def _matches_something(self) -> Plan:
        if not self.match and not self.all_matchers():
            raise ValueError("a plan needs match: or matchers:, or it would take every alert")
        return self

    @field_validator("stages")
    @classmethod
    def _ascending(cls, stages: list[float]) -> list[float]:
        if stages != sorted(stages):
            raise ValueError("stages must be in ascending order")
        return stages

    def stage(self, index: int) -> Stage:
        return cast(Stage, self.stages[index])

    def template_values(self) -> set[str]:
        """Names a template may use: the validated labels and their patterns' named groups."""
        names = set(self.labels)
        for pattern in self.labels.values():
            names |= set(re.compile(pattern).groupindex)
        return names


class CircuitBreaker(StrictModel):
    """Pause all automation when more than ``max_actions`` actions ran within ``window``.

    The last line of defence: a storm of one alertname trips that plan's storm guard long before.
    """

    max_actions: int = Field(100, ge=1)
    window: Duration = 600.0
    notify: list[str] = []


class WorkerConfig(StrictModel):
    concurrency: int = Field(8, ge=1, le=256)
    poll_interval: Duration = 0.5
    lease: Duration = 10.0
    delivery_attempts: int = Field(3, ge=1, le=10)
    retry_base: Duration = 1.0
    retry_cap: Duration = 30.0
    redelivery_cap: Duration = 600.0
    give_up_after: Duration = 86400.0


class Limits(StrictModel):
    max_body_bytes: int = Field(5 * 1024 * 1024, ge=1024)


class ReceiverConfig(StrictModel):
    auth: AuthConfig
    admin: AdminConfig | None = None
    store: str = DEFAULT_STORE
    prometheus_url: str | None = None
    prometheus_timeout: Duration = 10.0
    templates_dir: Path | None = None
    notifiers: NotifiersConfig = NotifiersConfig()
    routes: list[Route] = []
    recovery: list[Plan] = []
    circuit_breaker: CircuitBreaker = CircuitBreaker()
    worker: WorkerConfig = WorkerConfig()
    limits: Limits = Limits()
    console: ConsoleConfig = ConsoleConfig()

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("expected sqlite:///path or postgresql://...")
        return value

    def notifier_names(self) -> list[str]:
        return self.notifiers.names()

    def plan(self, name: str) -> Plan | None:
        return next((p for p in self.recovery if p.name == name), None)


def cross_check(config: ReceiverConfig) -> list[str]:
    """Problems that span sections, each with its key path."""
    known = set(config.notifier_names())
    problems: list[str] = []

    def names(loc: tuple[int | str, ...], wanted: list[str]) -> None:
        for i, name in enumerate(wanted):
            if name not in known:
                problems.append(f"{key_path((*loc, i))}: unknown notifier {name!r} (known: {sorted(known)})")

    for i, route in enumerate(config.routes):
        names(("routes", i, "notify"), route.notify)
    names(("circuit_breaker", "notify"), config.circuit_breaker.notify)
    seen: set[str] = set()
    for i, plan in enumerate(config.recovery):
        if plan.name in seen:
            problems.append(f"{key_path(('recovery', i, 'name'))}: duplicate plan name {plan.name!r}")
        seen.add(plan.name)
        names(("recovery", i, "escalate"), plan.escalate)
        names(("recovery", i, "notify_recovered"), plan.notify_recovered)
        allowed = plan.template_values()
        for j, action in enumerate(plan.actions):
            for field in sorted(template_fields(action) - allowed):
                problems.append(
                    f"{key_path(('recovery', i, 'actions', j))}: {{{field}}} is not a label validated in "
                    "labels: (or a named group of one)"
                )
        if plan.verify is not None:
            if config.prometheus_url is None:
                problems.append(f"{key_path(('recovery', i, 'verify'))}: verify needs prometheus_url")
            for field in sorted(set(PLACEHOLDER.findall(plan.verify)) - allowed):
                problems.append(
                    f"{key_path(('recovery', i, 'verify'))}: {{{field}}} is not a label validated in labels:"
                )
            for field in unquoted_placeholders(plan.verify):
                problems.append(
                    f"{key_path(('recovery', i, 'verify'))}: {{{field}}} must stand inside a double-quoted "
                    'string ("...") so its value is escaped'
                )
    return problems


def unquoted_placeholders(query: str) -> list[str]:
    """Placeholders of a verify query outside PromQL double-quoted strings.

    Values are escaped for double-quoted strings only; in single quotes, backticks or bare, a label
    value could end the string or add PromQL of its own.
    """
    found: list[str] = []
    quote = ""
    i = 0
    while i < len(query):
        char = query[i]
        if quote:
            if char == "\\" and quote != "`":
                i += 2
                continue
            if char == quote:
                quote = ""
            elif quote != '"' and (match := PLACEHOLDER.match(query, i)):
                found.append(match.group(1))
        elif char in "\"'`":
            quote = char
        elif match := PLACEHOLDER.match(query, i):
            found.append(match.group(1))
            i = match.end()
            continue
        i += 1
    return found


def load_config(path: str | Path) -> ReceiverConfig:
    """Load and fully check a receiver config, raising ConfigError with every problem.

    Every notifier is built once too, so a template that cannot be read or compiled is one of them.
    """
    return load_model(path, ReceiverConfig, lambda c: cross_check(c) + notifier_problems(c.notifiers, c.templates_dir))
