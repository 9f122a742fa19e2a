"""The Alertmanager webhook payload (version 4), parsed leniently: unknown fields are ignored.

Each alert is parsed straight into the domain's ``Alert``. Alertmanager adds fields over time, so only
the fields the receiver uses are declared and everything else is dropped. A payload that lacks them, or
is not version 4, can never become valid and is rejected.
"""

from __future__ import annotations

from typing import Literal

from opsloop.receiver.domain import Alert
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsloop.configfile import describe_errors


class PayloadError(ValueError):
    """A webhook body that can never be valid; the message says why (sent back with the 400)."""


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


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
