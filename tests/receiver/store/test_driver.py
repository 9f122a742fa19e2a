"""How operations run: statements one after another, or several operations side by side, on a real SQLite
connection (the statements' results are what the operations see)."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator

import pytest
from opsloop.receiver.store.driver import Op, Result, RunsOps, Stmt, drive, drive_together, marks


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)")
    yield conn
    conn.close()


def execute(conn: sqlite3.Connection, stmt: Stmt) -> Result:
    cursor = conn.execute(stmt.sql, tuple(stmt.params))
    return Result(cursor.fetchall(), cursor.rowcount)


def bump(key: str, times: int) -> Op[list[int]]:
    """Insert ``key``, add one ``times`` times, reading it back after each step: what it saw, in order."""
    seen = []
    yield Stmt("INSERT INTO t (k, v) VALUES (?, 0)", (key,))
    for _ in range(times):
        yield Stmt("UPDATE t SET v = v + 1 WHERE k = ?", (key,))
        found = yield Stmt("SELECT v FROM t WHERE k = ?", (key,))
        seen.append(found.rows[0][0])
    return seen


def test_marks_has_one_placeholder_per_value(conn: sqlite3.Connection) -> None:
    conn.executemany("INSERT INTO t (k, v) VALUES (?, ?)", [("a", 1), ("b", 2), ("c", 3)])
    keys = ("a", "c")
    assert marks(keys) == "?,?"
    assert conn.execute(f"SELECT v FROM t WHERE k IN ({marks(keys)}) ORDER BY v", keys).fetchall() == [(1,), (3,)]
    assert marks([]) == ""


def test_drive_sends_each_result_to_the_operation_and_returns_its_value(conn: sqlite3.Connection) -> None:
    assert drive(bump("a", 3), lambda stmt: execute(conn, stmt)) == [1, 2, 3]

    def empty() -> Op[str]:
        return "nothing to run"
        yield Stmt("SELECT 1")  # a generator that ends before its first statement

    assert drive(empty(), lambda stmt: execute(conn, stmt)) == "nothing to run"
    result = execute(conn, Stmt("UPDATE t SET v = 7"))
    assert (result.rows, result.rowcount) == ([], 1)


def test_drive_together_runs_one_statement_of_every_unfinished_operation_per_step(conn: sqlite3.Connection) -> None:
    steps: list[list[str]] = []

    def execute_all(stmts: list[Stmt]) -> list[Result]:
        steps.append([str(stmt.params[0]) for stmt in stmts])
        return [execute(conn, stmt) for stmt in stmts]

    ops = [bump("a", 1), bump("b", 0), bump("c", 2)]
    assert drive_together(ops, execute_all) == [[1], [], [1, 2]]
    # in the caller's order in every step; an operation that ended drops out of the next
    assert steps == [["a", "b", "c"], ["a", "c"], ["a", "c"], ["c"], ["c"]]
    assert conn.execute("SELECT k, v FROM t ORDER BY k").fetchall() == [("a", 1), ("b", 0), ("c", 2)]
    assert drive_together([], execute_all) == []


def test_drive_together_refuses_a_step_whose_results_do_not_match_its_statements(conn: sqlite3.Connection) -> None:
    def short(stmts: list[Stmt]) -> list[Result]:
        return [execute(conn, stmt) for stmt in stmts][:-1]

    with pytest.raises(ValueError, match="zip"):  # an operation left without its result would be lost silently
        drive_together([bump("a", 1), bump("b", 1)], short)


def test_statements_and_results_are_values_no_step_can_change() -> None:
    """They cross threads (the event loop's, the backend's): frozen, so what was sent is what runs."""
    stmt, result = Stmt("SELECT ?", (1,)), Result([(1,)], 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        stmt.sql = "DELETE FROM t"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.rowcount = 0  # type: ignore[misc]
    assert {stmt, Stmt("SELECT ?", (1,))} == {stmt}


def test_a_group_of_operations_needs_a_backend_that_runs_them() -> None:
    class NoBackend(RunsOps):
        pass

    with pytest.raises(TypeError, match=r"abstract method '?_run'?"):
        NoBackend()  # type: ignore[abstract]
