"""promtool on the committed rule files: syntax, and the unit tests of every alert."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

PROMTOOL = shutil.which("promtool") or "promtool"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, check=False)


def test_rule_and_unit_test_files_exist(rules_dir: Path) -> None:
    assert sorted(p.name for p in rules_dir.glob("opsloop-*.yml")) == ["opsloop-alerts.yml", "opsloop-records.yml"]
    assert sorted(p.name for p in rules_dir.glob("tests/*.test.yml")) == [
        "boundaries.test.yml",
        "cache.test.yml",
        "frameworks.test.yml",
        "jobs.test.yml",
        "queues.test.yml",
        "receiver.test.yml",
        "sources.test.yml",
    ]


def test_promtool_check_rules(rule_file: Path) -> None:
    done = _promtool("check", "rules", str(rule_file))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_unit_tests_pass(unit_test_file: Path) -> None:
    done = _promtool("test", "rules", str(unit_test_file))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_unit_tests_catch_a_wrong_expectation(rules_dir: Path, tmp_path: Path) -> None:
    """The unit tests really compare annotations: one changed word makes promtool fail."""
    text = (rules_dir / "tests" / "queues.test.yml").read_text().replace("holds 51 items", "holds 52 items", 1)
    broken = tmp_path / "broken.test.yml"
    broken.write_text(text.replace("../opsloop-", f"{rules_dir}/opsloop-"))
    done = _promtool("test", "rules", str(broken))
    assert done.returncode == 1
    assert "holds 52 items" in done.stdout + done.stderr


def test_every_alert_has_firing_and_silent_unit_tests(
    alert_rules: list[dict[str, Any]], alert_cases: list[dict[str, Any]]
) -> None:
    """A misspelled or new alert without tests fails here instead of passing silently."""
    names = {rule["alert"] for rule in alert_rules}
    firing = {case["alertname"] for case in alert_cases if case.get("exp_alerts")}
    silent = {case["alertname"] for case in alert_cases if not case.get("exp_alerts")}
    assert names - firing == set(), "alerts without a firing unit test"
    assert names - silent == set(), "alerts without a silent unit test"
    assert (firing | silent) - names == set(), "unit tests for alerts that do not exist"


def test_every_severity_of_every_alert_fires_in_a_unit_test(
    alert_rules: list[dict[str, Any]], alert_cases: list[dict[str, Any]]
) -> None:
    rules = {(rule["alert"], rule["labels"]["severity"]) for rule in alert_rules}
    fired = {
        (case["alertname"], alert["exp_labels"]["severity"])
        for case in alert_cases
        for alert in case.get("exp_alerts") or []
    }
    assert rules == fired
