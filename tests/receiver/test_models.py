"""Webhook payload parsing: lenient about new fields, strict about what the receiver relies on."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from opsloop.receiver.domain import parse_time
from opsloop.receiver.models import PayloadError, parse_payload

SAMPLE = Path(__file__).parent / "data" / "alertmanager-0.25-webhook-firing.json"


def test_sample_from_alertmanager_parses() -> None:
    payload = parse_payload(SAMPLE.read_bytes())
    (alert,) = payload.alerts
    assert (payload.receiver, payload.truncated_alerts, payload.external_url) == ("webhook", 0, "http://vm:55287")
    assert (alert.fingerprint, alert.labels["key"], alert.status) == ("f1dba52ed7b6a575", "queue:hot", "firing")


def test_unknown_fields_are_ignored_and_missing_ones_named() -> None:
    data = json.loads(SAMPLE.read_text())
    data["newTopLevel"] = 1
    data["alerts"][0]["newAlertField"] = {"nested": True}
    assert parse_payload(json.dumps(data).encode()).alerts[0].fingerprint == "f1dba52ed7b6a575"
    del data["alerts"][0]["fingerprint"]
    with pytest.raises(PayloadError, match=r"alerts\[0\]\.fingerprint: required key is missing"):
        parse_payload(json.dumps(data).encode())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T01:35:02.435Z", datetime(2026, 11, 22, 1, 35, 2, 435000, tzinfo=UTC)),
        ("2030-01-02T03:04:05.123456789+00:00", datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("2030-01-02T03:04:05Z", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", None),
    ],
)
def test_alertmanager_timestamps(text: str, expected: datetime | None) -> None:
    assert parse_time(text) == expected
