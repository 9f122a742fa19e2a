"""The README's conventions table: every row names a test that exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def conventions_rows() -> list[list[str]]:
    text = (ROOT / "README.md").read_text().split("## Prometheus conventions", 1)[1].split("\n## ", 1)[0]
    rows = [
        [cell.strip() for cell in line.strip("|").split(" | ")] for line in text.splitlines() if line.startswith("|")
    ]
    return rows[2:]  # header and separator


def test_every_conventions_row_is_complete_and_names_an_existing_test() -> None:
    rows = conventions_rows()
    assert len(rows) >= 15
    for row in rows:
        assert len(row) == 4, row
        assert all(cell for cell in row), row
        path, _, name = row[3].strip("`").partition("::")
        source = ROOT / path
        assert source.is_file(), row
        tests = {node.name for node in ast.walk(ast.parse(source.read_text())) if isinstance(node, ast.FunctionDef)}
        assert name in tests, row


def test_the_conventions_the_issue_lists_have_a_row() -> None:
    first_cells = " ".join(row[0] for row in conventions_rows())
    for topic in ("--version", "--config.file", "--web.listen-address", "--web.config.file", "--web.telemetry-path",
                  "--log.level", "--log.format", "_build_info", "_created", "landing page", "port in use"):  # fmt: skip
        assert re.search(re.escape(topic), first_cells), topic
