"""The Alertmanager webhook payload (version 4), parsed leniently: unknown fields are ignored.

Alertmanager adds fields over time, so only the fields the receiver uses are declared and everything else
is dropped. A payload that lacks them, or is not version 4, can never become valid and is rejected.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from opsloop.configfile import describe_errors

ZERO_TIME = "0001-01-01T00:00:00Z"


class PayloadError(ValueError):
    """A webhook body that can never be valid; the message says why (sent back with the 400)."""


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


def _timestamp(value: str) -> str:
    try:
        parse_time(value)
    except ValueError as exc:
        raise ValueError(f"expected an RFC 3339 timestamp, got {value[:40]!r}") from exc
    return value


Timestamp = Annotated[str, AfterValidator(_timestamp)]


class Alert(_Lenient):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: Timestamp = Field(alias="startsAt", min_length=1)
    ends_at: Timestamp = Field(ZERO_TIME, alias="endsAt")
    generator_url: str = Field("", alias="generatorURL")
    fingerprint: str = Field(min_length=1)


class WebhookPayload(_Lenient):
    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    alerts: list[Alert]
    group_key: str = Field("", alias="groupKey")
    external_url: str = Field("", alias="externalURL")
    truncated_alerts: int = Field(0, alias="truncatedAlerts", ge=0)


def parse_payload(body: bytes) -> WebhookPayload:
    """Validate a webhook body or raise PayloadError with every problem and its key path."""
    try:
        return WebhookPayload.model_validate_json(body)
    except ValidationError as exc:
        raise PayloadError("; ".join(describe_errors(exc))) from exc


def parse_time(value: str | None) -> datetime | None:
    """Alertmanager timestamps (RFC 3339, nanoseconds allowed); the zero time means unset."""
    if not value or value.startswith("0001-01-01"):
        return None
    text = value.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Python parses at most microseconds: trim the fraction, keep the offset.
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)].ljust(6, '0')}{rest[digits:]}"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
