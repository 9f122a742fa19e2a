"""Fixtures for the notifier tests: a sample notification and the local Slack and SMTP sinks."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from opsloop.receiver.domain import Incident
from opsloop.receiver.notify import Notification
from opsloop.testsupport.sinks import SlackSink, SmtpSink

INCIDENT = Incident(
    id=1,
    fingerprint="f1c2d3e4",
    starts_at="2024-05-01T03:00:00Z",
    status="firing",
    labels={"alertname": "DLQEntriesIncreasing", "dlq": "dlq:emails", "severity": "critical"},
    annotations={"summary": "DLQ dlq:emails is growing", "description": "42 entries in 10 minutes"},
    generator_url="http://127.0.0.1:9090/graph?g0.expr=up&g0.tab=1",
    external_url="http://127.0.0.1:9093",
)
NOTIFICATION_FIELDS = {f.name for f in dataclasses.fields(Notification)}

MakeNotification = Callable[..., Notification]


@pytest.fixture
def make_notification() -> MakeNotification:
    """``make_notification(kind="resolved", labels={...})``: the sample with fields of the notification
    or of its incident replaced."""

    def make(**changes: object) -> Notification:
        own = {k: v for k, v in changes.items() if k in NOTIFICATION_FIELDS}
        incident = dataclasses.replace(INCIDENT, **{k: v for k, v in changes.items() if k not in own})
        return Notification(**{"kind": "firing", "incident": incident, **own})  # type: ignore[arg-type]

    return make


@pytest.fixture
async def slack_sink() -> AsyncIterator[SlackSink]:
    async with SlackSink() as sink:
        yield sink


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A plain SMTP server without STARTTLS."""
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def tls_smtp_sink() -> Iterator[SmtpSink]:
    """An SMTP server requiring STARTTLS (self-signed, see ``ca_file``) and AUTH as alerts/s3cret."""
    with SmtpSink(starttls=True, credentials=("alerts", "s3cret")) as sink:
        yield sink
