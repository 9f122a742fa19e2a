"""Shared views of the committed rule files and their promtool unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

RULES = Path(__file__).resolve().parents[2] / "rules"
RULE_FILES = sorted(RULES.glob("opsloop-*.yml"))
UNIT_TEST_FILES = sorted((RULES / "tests").glob("*.test.yml"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``rule_file`` and ``unit_test_file`` arguments run once per committed file."""
    for name, paths in (("rule_file", RULE_FILES), ("unit_test_file", UNIT_TEST_FILES)):
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, paths, ids=[p.name for p in paths])


@pytest.fixture(scope="session")
def rules_dir() -> Path:
    return RULES


def _rules(kind: str) -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if kind in rule
    ]


@pytest.fixture(scope="session")
def alert_rules() -> list[dict[str, Any]]:
    return _rules("alert")


@pytest.fixture(scope="session")
def record_rules() -> list[dict[str, Any]]:
    return _rules("record")


@pytest.fixture(scope="session")
def alert_cases() -> list[dict[str, Any]]:
    """Every alert_rule_test case of every promtool unit test file."""
    return [
        case
        for path in UNIT_TEST_FILES
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
