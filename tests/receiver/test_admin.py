"""The admin API: its own token, incidents with history, pauses, runs by hand and explain."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from opsloop.receiver.domain import RECOVERED, SKIPPED

from tests.receiver.harness import ADMIN_TOKEN, Receiver, alert, webhook, write_config

Start = Callable[[Path], Awaitable[Receiver]]


def config(tmp_path: Path, **extra: object) -> Path:
    record = {
        "type": "command",
        "argv": [sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write(sys.argv[2])",
                 str(tmp_path / "ran"), "{name}"],
    }  # fmt: skip
    plan = {
        "name": "fix", "match": {"alertname": "Broken"}, "labels": {"svc": "^svc-(?P<name>[a-z]{1,20})$"},
        "actions": [record],
    }  # fmt: skip
    return write_config(tmp_path, recovery=[plan], **extra)


async def test_admin_token_is_separate_and_required(tmp_path: Path, receivers: Start) -> None:
    receiver = await receivers(config(tmp_path))
    assert (await receiver.post(b"", path="/api/automation/pause"))[0] == 401  # the webhook token is not enough
    assert (await receiver.post(webhook(alert("x")), token=ADMIN_TOKEN))[0] == 401  # and vice versa
    assert (await receiver.admin("GET", "/api/automation")) == (200, {"paused": {}})


async def test_admin_api_is_off_without_a_token(tmp_path: Path, receivers: Start) -> None:
    path = config(tmp_path)
    path.write_text(path.read_text().replace("admin:\n  token_file: " + str(tmp_path / "admin-token") + "\n", ""))
    receiver = await receivers(path)
    status, body = await receiver.admin("GET", "/api/incidents")
    assert (status, body["error"]) == (403, "the admin API is disabled: configure admin.token_file")


async def test_pause_a_plan_then_resume_and_list_incidents(tmp_path: Path, receivers: Start) -> None:
    receiver = await receivers(config(tmp_path))
    status, body = await receiver.admin("POST", "/api/plans/fix/pause", {"reason": "deploying"})
    assert status == 200
    assert body["paused"]["fix"]["reason"] == "deploying"
    assert (await receiver.admin("POST", "/api/plans/nope/pause"))[0] == 404
    await receiver.post(webhook(alert("p1", alertname="Broken", svc="svc-web")))
    await receiver.settled()
    await receiver.admin("POST", "/api/plans/fix/resume")
    await receiver.post(webhook(alert("p2", alertname="Broken", svc="svc-api")))
    await receiver.settled()
    status, body = await receiver.admin("GET", "/api/incidents")
    assert status == 200
    by_fp = {i["fingerprint"]: i for i in body["incidents"]}
    assert by_fp["p1"]["plan_runs"][0]["state"] == SKIPPED
    assert by_fp["p1"]["plan_runs"][0]["result"] == "plan fix did not run: automation paused (this plan): deploying"
    assert by_fp["p2"]["plan_runs"][0]["state"] == RECOVERED
    assert [(a["type"], a["state"]) for a in by_fp["p2"]["actions"]] == [("command", "ok")]
    assert (tmp_path / "ran").read_text() == "api"
    status, one = await receiver.admin("GET", f"/api/incidents/{by_fp['p2']['id']}")
    assert (status, one["fingerprint"]) == (200, "p2")
    assert (await receiver.admin("GET", "/api/incidents/999"))[0] == 404


async def test_run_by_hand_validates_labels_and_honours_dry_run(tmp_path: Path, receivers: Start) -> None:
    receiver = await receivers(config(tmp_path))
    await receiver.admin("POST", "/api/automation/pause")  # a person may still run a plan
    status, body = await receiver.admin("POST", "/api/plans/fix/run", {"labels": {"svc": "svc-$(id)"}})
    assert (status, body["error"]) == (400, "label svc does not match its pattern")
    status, body = await receiver.admin("POST", "/api/plans/fix/run", {"labels": {"svc": "svc-db"}, "dry_run": True})
    assert status == 202
    assert body["values"] == {"svc": "svc-db", "name": "db"}
    await receiver.settled()
    (view,) = (await receiver.incidents()).values()
    assert view.jobs[0].manual
    assert [(a.state, a.dry_run) for a in view.actions] == [("ok", True)]
    assert not (tmp_path / "ran").exists()  # dry run: described, not done


async def test_explain_shows_matches_and_reasons_without_acting(tmp_path: Path, receivers: Start) -> None:
    receiver = await receivers(
        config(
            tmp_path,
            notifiers={"slack": [{"name": "a", "webhook_url": "http://127.0.0.1:9/x"}]},
            routes=[
                {"match": {"team": "ui"}, "notify": ["slack/a"]},
                {"matchers": ['svc=~"svc-.+"'], "notify": ["slack/a"], "continue": True},
                {"match": {}, "notify": ["slack/a"]},
                {"match": {}, "notify": ["slack/a"]},
            ],
        )
    )
    payload = webhook(alert("e1", alertname="Broken", svc="svc-web"), alert("e2", alertname="Broken", svc="nope"))
    status, body = await receiver.admin("POST", "/api/explain", payload)
    assert status == 200
    first, second = body["alerts"]
    assert [r["matched"] for r in first["routes"]] == [False, True, True, False]
    assert first["routes"][0]["why"] == ["team: missing"]
    assert first["routes"][3]["why"] == "an earlier route matched without continue"
    assert second["routes"][1]["why"] == ["svc=~\"svc-.+\" failed: svc='nope'"]
    assert first["plans"] == [{
        "name": "fix", "matchers": [], "matched": True, "takes_alert": True,
        "why": "all matchers and label patterns fit", "values": {"svc": "svc-web", "name": "web"}, "paused": None,
    }]  # fmt: skip
    assert second["plans"][0]["why"] == ["label svc does not match its pattern"]
    assert await receiver.incidents() == {}
    assert not (tmp_path / "ran").exists()
