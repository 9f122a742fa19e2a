"""The receiver's domain: one alert type from payload to notification, and the key formats."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from opsloop.receiver.domain import (
    NOTIFY_KINDS,
    Incident,
    delivery_key,
    notifier_key,
    parse_time,
    plan_key,
)
from opsloop.receiver.models import parse_payload
from opsloop.receiver.notify.base import KIND_TITLES, Notification

SAMPLE = Path(__file__).parent / "data" / "alertmanager-0.25-webhook-firing.json"


def test_a_firing_alert_has_no_end_and_a_resolved_one_keeps_it() -> None:
    data = json.loads(SAMPLE.read_text())
    raw = data["alerts"][0]
    (firing,) = parse_payload(json.dumps(data).encode()).alerts
    assert (firing.fingerprint, firing.starts_at, firing.ends_at) == (raw["fingerprint"], raw["startsAt"], None)
    data["alerts"][0] |= {"status": "resolved", "endsAt": "2024-05-01T03:20:00.123456789Z"}
    (resolved,) = parse_payload(json.dumps(data).encode()).alerts
    assert resolved.ends_at == "2024-05-01T03:20:00.123456789Z"
    assert parse_time(resolved.ends_at).isoformat() == "2024-05-01T03:20:00.123456+00:00"


def test_a_notification_is_a_view_of_its_incident() -> None:
    (alert,) = parse_payload(SAMPLE.read_bytes()).alerts
    incident = Incident(**{**dataclasses.asdict(alert), "status": "resolved", "ends_at": "2024-05-01T03:20:00Z"}, id=7)
    resolved = Notification("resolved", incident)
    assert (resolved.status, resolved.ends_at.isoformat()) == ("resolved", "2024-05-01T03:20:00+00:00")
    assert resolved.starts_at == parse_time(alert.starts_at)
    assert incident.thread_key == f"{alert.fingerprint}:{alert.starts_at}"
    assert incident.alertname == alert.labels["alertname"]


def test_keys_have_one_format_each() -> None:
    assert notifier_key("slack", "oncall") == "slack/oncall"
    assert delivery_key("slack/oncall", "fp", "2030-01-01T00:00:00Z", "resolved") == (
        "delivery|slack/oncall|fp|2030-01-01T00:00:00Z|resolved"
    )
    assert delivery_key("slack/oncall", "fp", "t", "firing", "plan:fix") == "delivery|slack/oncall|fp|t|firing|plan:fix"
    assert plan_key("fix", "fp", "t") == "plan|fix|fp|t|firing"


def test_every_kind_has_a_title() -> None:
    titles = {
        "firing": "FIRING", "resolved": "RESOLVED", "escalation": "ESCALATION", "recovered": "RECOVERED",
        "automation_paused": "AUTOMATION PAUSED", "approval_needed": "APPROVAL NEEDED",
    }  # fmt: skip
    assert {k: KIND_TITLES[k] for k in NOTIFY_KINDS} == titles
