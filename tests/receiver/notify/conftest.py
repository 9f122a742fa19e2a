"""Fixtures for the notifier tests: a sample notification and the local Slack and SMTP sinks."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime

import pytest
from opsloop.receiver.notify import Notification
from opsloop.testsupport.sinks import SlackSink, SmtpSink

STARTS_AT = datetime(2024, 5, 1, 3, 0, 0, tzinfo=UTC)

BASE = Notification(
    kind="firing",
    thread_key="f1c2d3e4:2024-05-01T03:00:00Z",
    status="firing",
    labels={"alertname": "DLQEntriesIncreasing", "dlq": "dlq:emails", "severity": "critical"},
    annotations={"summary": "DLQ dlq:emails is growing", "description": "42 entries in 10 minutes"},
    starts_at=STARTS_AT,
    ends_at=None,
    fingerprint="f1c2d3e4",
    generator_url="http://127.0.0.1:9090/graph?g0.expr=up&g0.tab=1",
    external_url="http://127.0.0.1:9093",
)

MakeNotification = Callable[..., Notification]


@pytest.fixture
def make_notification() -> MakeNotification:
    """``make_notification(kind="resolved", labels={...})``: the sample with fields replaced."""
    return lambda **changes: dataclasses.replace(BASE, **changes)


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
