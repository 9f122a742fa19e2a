"""Console pages over HTTP where a browser adds nothing: explain with a whole payload, bad input."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.receiver.console.conftest import Client
from tests.receiver.harness import Receiver, alert, webhook, write_config

Start = Callable[[Path], Awaitable[Receiver]]
PLAN = {"name": "fix", "match": {"alertname": "Broken"}, "labels": {"svc": "^[a-z]{1,10}$"},
        "actions": [{"type": "command", "argv": ["true"]}]}  # fmt: skip


async def signed_in(tmp_path: Path, receivers: Start) -> tuple[Receiver, Client]:
    receiver = await receivers(write_config(tmp_path, recovery=[PLAN]))
    client = Client(receiver)
    assert await client.sign_in() == 303
    return receiver, client


async def test_explain_a_whole_payload_like_the_admin_api(tmp_path: Path, receivers: Start) -> None:
    receiver, client = await signed_in(tmp_path, receivers)
    payload = webhook(alert("a", alertname="Broken", svc="web"), alert("b", alertname="Broken", svc="NO"))
    status, api = await receiver.admin("POST", "/api/explain", payload)
    assert status == 200
    form = {"csrf": await client.csrf(), "input": json.dumps(payload)}
    status, _, page, _ = await client.request("POST", "/ui/explain", form)
    assert status == 200
    for found in api["alerts"]:  # the page says what the admin API says, alert by alert
        (plan,) = found["plans"]
        why = plan["why"] if isinstance(plan["why"], str) else "; ".join(plan["why"])
        assert why in page
    assert page.count("<h2>Broken</h2>") == 2
    form["input"] = '{"version": "4", "alerts": [{"labels": {}}]}'
    status, _, page, _ = await client.request("POST", "/ui/explain", form)
    assert status == 400
    assert "alerts[0].fingerprint: required key is missing" in page


async def test_run_by_hand_refuses_bad_labels_and_keeps_the_form(tmp_path: Path, receivers: Start) -> None:
    receiver, client = await signed_in(tmp_path, receivers)
    csrf = await client.csrf()
    for labels, error in (
        ("svc", "labels line 1: expected name=value"),
        ('{"svc": 1}', "labels must be an object of strings"),
        ("9bad=x", "label name &#39;9bad&#39; is not a valid Prometheus label name"),
        ("svc=web", ""),
    ):
        form = {"csrf": csrf, "plan": "fix", "labels": labels, "dry_run": "on"}
        status, _, page, _ = await client.request("POST", "/ui/automation/run", form)
        if error:
            assert status == 400
            assert error in page
        else:
            assert status == 200
            assert "Confirm: run fix (dry run)" in page
    status, _, page, _ = await client.request("POST", "/ui/automation/run", {**form, "plan": "nope"})
    assert status == 400
    assert "no plan named &#39;nope&#39;" in page
    assert await receiver.incidents() == {}  # nothing was queued without the confirmation
