"""The console in a real headless Chromium against a receiver process: what on-call people do with it."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from opsloop.testsupport.sinks import SmtpSink
from opsloop.testsupport.slack_api import SlackApiSink
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.receiver.console.conftest import Browser, ConsoleReceiver, failing_plan, record_plan
from tests.receiver.harness import alert, email_notifier, webhook

pytestmark = pytest.mark.slow
Start = Callable[..., ConsoleReceiver]
DOCS_IMG = Path(__file__).resolve().parents[3] / "docs" / "img"


def keep_for_docs(shot: Path) -> None:
    """Refresh the README's screenshots when asked to (OPSLOOP_UPDATE_SCREENSHOTS=1)."""
    if os.environ.get("OPSLOOP_UPDATE_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(exist_ok=True)
        shutil.copy(shot, DOCS_IMG / f"console-{shot.name}")


def test_sign_in_then_a_webhook_appears_without_reload_and_its_timeline_shows_the_stages(
    tmp_path: Path, console_receiver: Start, browser: Browser
) -> None:
    ran = tmp_path / "ran"
    receiver = console_receiver(recovery=[record_plan("Broken", ran, stages=["0s", "1m"])],
                                console={"refresh_interval": "1s"})  # fmt: skip
    browser.base = receiver.url
    browser.open("/ui/incidents")
    assert browser.path() == "/ui/login"  # no session: sent to sign in
    keep_for_docs(browser.shoot("login"))
    browser.sign_in(receiver.url)
    browser.wait_text("0 incidents")
    browser.driver.execute_script("window.notReloaded = true")
    assert receiver.post(webhook(alert("live-1", alertname="Broken", svc="web", severity="critical"))) == 200
    browser.wait_text("recovered", timeout=10)
    assert browser.driver.execute_script("return window.notReloaded") is True  # refreshed in place
    cells = ["Broken", "svc=web", "critical", "firing", "Broken: recovered"]
    browser.wait_for(lambda: all(c in browser.css("table.list tbody tr").text for c in cells), f"a row with {cells}")
    browser.follow("table.list tbody tr a")
    browser.wait_text("Timeline")
    page = browser.text()
    expected = ["alert received", "plan Broken started (automatic)", "Broken stage 1: command",
                "Broken stage 1 verification: recovered", "plan Broken recovered"]  # fmt: skip
    positions = [page.index(line) for line in expected]
    assert positions == sorted(positions), page  # in the order they happened
    assert ran.read_text() == "web\n"  # the oracle: the action really ran once
    keep_for_docs(browser.shoot("timeline"))


def pause_plan(browser: Browser, plan: str, reason: str) -> None:
    browser.open("/ui/automation")
    browser.css(f"#plan-{plan} input[name=reason]").send_keys(reason)
    browser.click(f"#plan-{plan} button[type=submit]")
    browser.wait_text(f"{plan} paused")


def test_pause_a_plan_see_the_alert_skipped_with_the_reason_then_resume(
    tmp_path: Path, console_receiver: Start, browser: Browser
) -> None:
    ran = tmp_path / "ran"
    receiver = console_receiver(recovery=[record_plan("Broken", ran)])
    browser.sign_in(receiver.url, name="bob")
    pause_plan(browser, "Broken", "database failover in progress")
    assert receiver.admin("GET", "/api/automation")["paused"]["Broken"]["reason"] == "database failover in progress"
    keep_for_docs(browser.shoot("automation"))
    assert receiver.post(webhook(alert("paused-1", alertname="Broken", svc="web"))) == 200
    receiver.wait(lambda: receiver.incident("paused-1")["plan_runs"][0]["state"] == "skipped", "the skip")
    browser.open("/ui/incidents")
    browser.wait_text("Broken: skipped")
    assert "automation paused (this plan): database failover in progress" in browser.text()
    browser.follow("table.list tbody tr a")
    browser.wait_text("plan Broken skipped")
    assert "paused plan Broken" in browser.text()
    assert "bob (admin token)" in browser.text()
    browser.open("/ui/automation")
    browser.click("#plan-Broken button[type=submit]")
    browser.wait_text("Broken resumed")
    assert receiver.admin("GET", "/api/automation") == {"paused": {}}
    assert receiver.post(webhook(alert("paused-2", alertname="Broken", svc="api"))) == 200
    receiver.wait(lambda: receiver.incident("paused-2")["plan_runs"][0]["state"] == "recovered", "the recovery")
    assert ran.read_text() == "api\n"  # only the alert after the resume was acted on


def test_run_a_plan_by_hand_in_dry_run_after_a_confirmation(
    tmp_path: Path, console_receiver: Start, browser: Browser
) -> None:
    ran = tmp_path / "ran"
    receiver = console_receiver(recovery=[record_plan("Broken", ran)])
    browser.sign_in(receiver.url, name="carol")
    browser.open("/ui/automation")
    Select(browser.css("#run-plan")).select_by_visible_text("Broken")
    browser.css("#run-labels").send_keys("svc=$(reboot)")
    browser.click("#run button[type=submit]")
    browser.wait_text("label svc does not match its pattern")  # validated like an alert's labels
    browser.css("#run-labels").clear()
    browser.css("#run-labels").send_keys("svc=cache")
    assert browser.css("#run input[name=dry_run]").is_selected()
    browser.click("#run button[type=submit]")
    browser.wait_text("Confirm: run Broken (dry run)")
    assert "svc=cache" in browser.text()
    keep_for_docs(browser.shoot("run-confirm"))
    browser.click("#run form button[type=submit]")
    browser.wait_for(lambda: browser.path().startswith("/ui/incidents/"), "the new incident's page")
    browser.wait_text("plan Broken recovered")
    page = browser.text()
    assert "plan Broken started (run by hand)" in page
    assert "dry run" in page
    assert "ran plan Broken by hand (dry run)" in page
    assert "carol (admin token)" in page
    assert not ran.exists()  # a dry run describes the action and does not do it


def test_approve_a_waiting_stage_and_reject_another(tmp_path: Path, console_receiver: Start, browser: Browser) -> None:
    ran = tmp_path / "ran"
    with SmtpSink() as mail:
        plan = record_plan("Risky", ran, stages=[{"after": "0s", "approve": "required", "approve_timeout": "10m"}])
        receiver = console_receiver(
            recovery=[plan], notifiers={"email": [email_notifier("oncall", mail.port)]},
            routes=[{"notify": ["email/oncall"]}], console={"external_url": "https://console.example.com"},
        )  # fmt: skip
        browser.sign_in(receiver.url, name="dana")
        for fingerprint, svc in (("approve-me", "web"), ("reject-me", "db")):
            assert receiver.post(webhook(alert(fingerprint, alertname="Risky", svc=svc))) == 200
        receiver.wait(lambda: sum("waits for approval" in m.get_body(("plain",)).get_content()
                                  for m in mail.messages) == 2, "two approval requests")  # fmt: skip
        approve_id = receiver.incident("approve-me")["id"]
        reject_id = receiver.incident("reject-me")["id"]
        bodies = [m.get_body(("plain",)).get_content() for m in mail.messages]
        assert any(f"https://console.example.com/ui/incidents/{approve_id}" in b for b in bodies)
        assert not ran.exists()  # nothing runs before a person says so
        browser.open(f"/ui/incidents/{approve_id}")
        browser.wait_text("Plan Risky waits for approval before stage 1")
        keep_for_docs(browser.shoot("approval"))
        browser.css("form[action$='/approve'] input[name=reason]").send_keys("looks safe")
        browser.click("form[action$='/approve'] button")
        browser.wait_text("plan Risky recovered")
        page = browser.text()
        assert "approval_needed message to email/oncall" in page  # the message as sent
        assert "Subject: [APPROVAL NEEDED] Risky svc=web" in page
        assert "stage 1 approved" in page
        assert "dana (admin token)" in browser.text()
        assert ran.read_text() == "web\n"
        browser.open(f"/ui/incidents/{reject_id}")
        browser.css("form[action$='/reject'] input[name=reason]").send_keys("not during the sale")
        browser.click("form[action$='/reject'] button")
        browser.wait_text("plan Risky escalated")
        assert "stage 1 was rejected by dana (admin token): not during the sale" in browser.text()
        assert ran.read_text() == "web\n"  # the rejected stage did not run
        receiver.wait(lambda: any(m["Subject"].startswith("[ESCALATION]") for m in mail.messages), "the escalation")


def test_stats_count_repairs_and_escalations(tmp_path: Path, console_receiver: Start, browser: Browser) -> None:
    receiver = console_receiver(recovery=[record_plan("Fixable", tmp_path / "ran"), failing_plan("Hopeless")])
    started = float(int(time.time()) - 300)  # the alerts began firing five minutes before they reach the receiver
    starts = datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    alerts = [alert(f"fix-{n}", starts=starts, alertname="Fixable", svc=f"s{n}", severity="page") for n in range(3)]
    alerts.append(alert("hopeless", starts=starts, alertname="Hopeless", svc="x", severity="ticket"))
    assert receiver.post(webhook(*alerts)) == 200
    receiver.wait(lambda: all(i["plan_runs"] and i["plan_runs"][0]["state"] != "pending" for i in
                              receiver.admin("GET", "/api/incidents")["incidents"]), "all four runs")  # fmt: skip
    states = sorted(i["plan_runs"][0]["state"] for i in receiver.admin("GET", "/api/incidents")["incidents"])
    assert states == ["escalated", "recovered", "recovered", "recovered"]  # the oracle for the numbers below
    stats = receiver.admin("GET", "/api/stats?range=1d")
    assert (stats["total"]["incidents"], stats["total"]["repaired_percent"]) == (4, 75.0)
    assert stats["total"]["escalated_percent"] == 25.0
    assert stats["alertnames"]["Hopeless"]["escalated_percent"] == 100.0
    assert stats["plans"]["Fixable"]["actions"] == {"ok": 3}
    assert sum(d["incidents"] for d in stats["incidents_per_day"]) == 4
    finished = time.time()
    for key in ("time_to_repair_mean_seconds", "time_to_repair_p90_seconds", "time_to_first_action_mean_seconds"):
        assert 300 <= stats["total"][key] <= finished - started, key  # startsAt to the plan's recovery
    browser.sign_in(receiver.url)
    browser.wait_text("Hopeless: escalated")
    keep_for_docs(browser.shoot("incidents"))
    browser.open("/ui/stats")
    assert browser.css("#total-incidents").text == "4"
    assert browser.css("#total-repaired").text == "75.0%"
    assert browser.css("#total-escalated").text == "25.0%"
    assert "4 incidents; 3 repaired automatically, 1 escalated" in browser.css("svg.chart desc").get_attribute(
        "textContent"
    )
    keep_for_docs(browser.shoot("stats"))
    browser.open("/ui/explain")
    browser.css("textarea[name=input]").send_keys("alertname=Fixable\nsvc=BAD VALUE")
    browser.click("main form button[type=submit]")
    browser.wait_text("label svc does not match its pattern")
    keep_for_docs(browser.shoot("explain"))


def test_hostile_labels_render_as_text(console_receiver: Start, browser: Browser) -> None:
    receiver = console_receiver()
    hostile = {"alertname": "<script>window.pwned=1</script>", "svc": '"><img src=x onerror="window.pwned=2">'}
    assert receiver.post(webhook(alert("xss", **hostile))) == 200
    browser.sign_in(receiver.url)
    browser.wait_text("<script>window.pwned=1</script>")
    assert 'svc="><img src=x onerror="window.pwned=2">' in browser.text()
    browser.follow("table.list tbody tr a")
    browser.wait_text("Timeline")
    time.sleep(0.5)  # give an injected image's onerror the chance it must not get
    assert browser.driver.execute_script("return window.pwned") is None
    assert browser.driver.find_elements(By.CSS_SELECTOR, "main img") == []


def test_each_alert_of_a_group_shows_the_ids_of_the_messages_it_went_out_in(
    console_receiver: Start, browser: Browser
) -> None:
    """Two groups, each told in one mail and one Slack message (app mode): every alert's page names the
    Message-ID and the ts of its own group's messages, as the mail server and Slack recorded them."""
    channel, token = "C0CONSOLE1", "xoxb-console-test"
    zones = {"east": ["east-1", "east-2"], "west": ["west-1", "west-2", "west-3"]}
    with SmtpSink() as mail, SlackApiSink(token=token, channels=(channel,)) as api:
        app = {"name": "app", "token": token, "channel": channel, "api_url": api.url}
        receiver = console_receiver(
            notifiers={"email": [email_notifier("oncall", mail.port)], "slack": [app]},
            routes=[{"match": {}, "notify": ["email/oncall", "slack/app"], "group_window": "0s"}],
        )  # fmt: skip
        for zone, fingerprints in zones.items():
            alerts = [alert(fp, alertname="ReplicationLag", zone=zone, db=fp) for fp in fingerprints]
            assert receiver.post(webhook(*alerts, group_key=f'{{}}:{{zone="{zone}"}}')) == 200
        receiver.wait(lambda: len(mail.messages) == 2 and len(api.messages) == 2, "two mails and two Slack messages")

        # The oracle: the mail and the Slack message whose text names each zone's alerts.
        def names(text: str, zone: str) -> bool:
            return all(fp in text for fp in zones[zone])

        mail_of = {zone: next(str(m["Message-ID"]) for m in mail.messages
                              if names(m.get_body(("plain",)).get_content(), zone)) for zone in zones}  # fmt: skip
        ts_of = {zone: next(m.ts for m in api.messages if names(json.dumps(m.payload), zone)) for zone in zones}
        assert len(set(mail_of.values())) == len(set(ts_of.values())) == 2
        every = [fp for fps in zones.values() for fp in fps]
        receiver.wait(lambda: all(len(receiver.incident(fp)["deliveries"]) == 2 and
                                  all(d["state"] == "sent" for d in receiver.incident(fp)["deliveries"])
                                  for fp in every), "every delivery recorded")  # fmt: skip
        browser.sign_in(receiver.url)
        browser.wait_text("5 incidents")
        rows = {r.find_element(By.CSS_SELECTOR, "td").text: r for r in browser.driver.find_elements(
            By.CSS_SELECTOR, "table.list tbody tr")}  # fmt: skip
        for zone, fingerprints in zones.items():
            for fp in fingerprints:  # the list: beside each alert, the messages of its group
                ids = rows[str(receiver.incident(fp)["id"])].find_elements(By.CSS_SELECTOR, ".message-id code")
                assert sorted(e.text for e in ids) == sorted([mail_of[zone], ts_of[zone]])
        for zone, fingerprints in zones.items():
            other = next(z for z in zones if z != zone)
            for fp in fingerprints:
                browser.open(f"/ui/incidents/{receiver.incident(fp)['id']}")
                browser.wait_text("Timeline")
                shown = [e.text for e in browser.driver.find_elements(By.CSS_SELECTOR, "table.timeline .message-id")]
                assert sorted(shown) == sorted([f"message id {mail_of[zone]}", f"message id {ts_of[zone]}"])
                assert mail_of[other] not in browser.text()
