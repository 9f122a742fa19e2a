"""deploy/mutate.py's ledger: a mutation run stopped in one checkout goes on in another, without its cache.

A real mutmut run over a module of four lines, in a project of its own (a copy of the script, its table
naming that module): its ledger must record what its tests decide, and ``--resume`` in a copy of the
project without mutmut's cache (as in a fresh clone) must start from the ledger. The oracle is the tests
themselves: they count their own runs, and one copy's tests cannot kill a mutant the first copy's did.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE = "def grade(score):\n    if score >= 50:\n        return 'pass'\n    return 'fail'\n"
COUNTING = """from pathlib import Path

from grade import grade


def test_grade():
    with (Path(__file__).parents[1] / 'runs').open('a') as runs:
        runs.write('.')
"""
"""A test that counts its runs in the file ``runs`` (outside tests/, whose hash keys the statuses)."""
ALL = "    assert grade(80) == 'pass'\n    assert grade(10) == 'fail'\n"
"""Kills the two strings, not the boundary: ``score > 50`` and ``score >= 51`` survive."""
BOUNDARY = "    assert grade(50) == 'pass'\n"
"""Kills the boundary and the first string; ``'XXfailXX'`` would survive it."""


def project(at: Path, assertions: str) -> Path:
    (at / "deploy").mkdir(parents=True)
    (at / "tests").mkdir()
    script = (ROOT / "deploy" / "mutate.py").read_text()
    table = "MODULES: dict[str, list[str]] = {\n"
    assert script.count(table) == 1
    entry = '    "grade.py": ["tests/test_grade.py"],\n'
    (at / "deploy" / "mutate.py").write_text(script.replace(table, table + entry))
    (at / "pyproject.toml").write_text('[tool.pytest.ini_options]\npythonpath = ["."]\n')
    (at / "grade.py").write_text(MODULE)
    (at / "tests" / "test_grade.py").write_text(COUNTING + assertions)
    return at


def mutate(at: Path, *args: str) -> None:
    (at / "runs").write_text("")
    cmd = [sys.executable, "deploy/mutate.py", "--budget", "3", *args, "grade.py"]
    subprocess.run(cmd, cwd=at, check=True, capture_output=True, timeout=240)


def ledger(at: Path) -> dict[tuple[int, int], str]:
    """What the tests decided, by (line number from 0, mutant of the line): "killed" or "survived".

    mutmut's own prefix says it: ``ok_killed``, and ``ok_suspicious`` (killed, but the run took over twice
    the unmutated one, which a loaded machine decides, not the tests), against ``bad_survived``."""
    lines = (at / "docs" / "mutation" / "grade.py.tsv").read_text().splitlines()
    assert lines[1].split("\t") == ["mutant", "file", "line", "text", "index", "status", "tests"]
    rows = [line.split("\t") for line in lines[2:]]
    assert {row[1] for row in rows} == {"grade.py"}
    decided = {"ok_killed": "killed", "ok_suspicious": "killed", "bad_survived": "survived"}
    return {(int(row[2]), int(row[4])): decided.get(row[5], row[5]) for row in rows}


def ledger_text(at: Path) -> str:
    """The ledger as written, but "suspicious" read as killed: a resume seeds such a mutant as killed."""
    return (at / "docs" / "mutation" / "grade.py.tsv").read_text().replace("\tok_suspicious\t", "\tok_killed\t")


def clone(source: Path, at: Path) -> Path:
    """The project as committed: without mutmut's caches (or the runs counted there)."""
    return Path(shutil.copytree(source, at, ignore=shutil.ignore_patterns(".mutmut-cache*", "runs", "__pycache__")))


def suspicious(at: Path, line: int) -> None:
    """The ledger as a loaded machine may write it: the killed mutant of ``line`` called suspicious."""
    path = at / "docs" / "mutation" / "grade.py.tsv"
    rows = [row.split("\t") for row in path.read_text().splitlines()]
    for row in rows[2:]:
        if row[2] == str(line):
            assert row[5] in ("ok_killed", "ok_suspicious")
            row[5] = "ok_suspicious"
    path.write_text("\n".join("\t".join(row) for row in rows) + "\n")


def summary(at: Path) -> str:
    return next(line for line in (at / "docs" / "mutation.md").read_text().splitlines() if line.startswith("Run "))


def test_a_resumed_run_in_a_checkout_without_the_cache_goes_on_from_the_ledger(tmp_path: Path) -> None:
    first = project(tmp_path / "first", ALL)
    mutate(first)
    assert (first / "runs").read_text() == "." * 5  # the tests without mutations, then each of 4 mutants
    assert ledger(first) == {(1, 0): "survived", (1, 1): "survived", (2, 0): "killed", (3, 0): "killed"}
    assert "4 mutants, 2 killed (50.0%), 2 survived." in summary(first)
    assert (first / "grade.py").read_text() == MODULE

    same = clone(first, tmp_path / "same")  # nothing changed: nothing to test again
    mutate(same, "--resume")
    assert (same / "runs").read_text() == "."  # the tests without mutations only
    assert ledger_text(same) == ledger_text(first)  # the same ids, statuses and tests
    assert "4 mutants, 2 killed (50.0%), 2 survived." in summary(same)

    # New tests, and a line above the mutated ones: the survivors are tested again, wherever they are now,
    # and what the first tests killed stays killed, though the new ones would not kill 'XXfailXX', even
    # where mutmut called it suspicious (killed, in a run a loaded machine made slow).
    later = clone(first, tmp_path / "later")
    suspicious(later, line=3)
    (later / "grade.py").write_text("# grades\n" + MODULE)
    (later / "tests" / "test_grade.py").write_text(COUNTING + BOUNDARY)
    mutate(later, "--resume")
    assert (later / "runs").read_text() == "." * 3  # without mutations, then the two survivors
    assert ledger(later) == {(2, 0): "killed", (2, 1): "killed", (3, 0): "killed", (4, 0): "killed"}
    assert "4 mutants, 4 killed (100.0%)." in summary(later)
