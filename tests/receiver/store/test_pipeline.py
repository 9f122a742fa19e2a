"""The webhook writer's libpq pipeline against a real PostgreSQL: what it returns is what psycopg's own
cursor returns for the same statement (the oracle), a transaction is committed only when its block ends
without an error, a refused statement raises psycopg's class for its SQLSTATE and leaves the connection
idle, statements are prepared once per connection (``pg_prepared_statements``), and a lost connection is
an ``OperationalError``."""

from __future__ import annotations

import psycopg
import pytest
from opsloop.receiver.store.driver import Result, Stmt
from opsloop.receiver.store.pipeline import Pipeline
from opsloop.testsupport.servers import PostgresServer

from tests.receiver.store.conftest import fresh_postgres_url

TABLE = (
    "CREATE TABLE t (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name TEXT UNIQUE, n INTEGER, "
    "x DOUBLE PRECISION)"
)
INSERT = "INSERT INTO t (name, n, x) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING RETURNING id, name, n, x"


@pytest.fixture
def url(postgres_server: PostgresServer) -> str:
    url = fresh_postgres_url(postgres_server, "pipeline")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(TABLE)
    return url


def in_one_transaction(conn: psycopg.Connection[tuple[object, ...]], *steps: list[Stmt] | str) -> None:
    """Each step run in turn in one pipeline transaction; a text instead raises the caller's own error, and
    ``"terminate"`` ends the connection's backend from another connection."""
    with Pipeline(conn) as pipeline:
        for step in steps:
            if step == "terminate":
                with psycopg.connect(conn.info.dsn, autocommit=True) as other:
                    other.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
            elif isinstance(step, str):
                raise LookupError(step)
            else:
                pipeline.run(step)


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def cursor_result(url: str, stmt: Stmt) -> Result:
    """What psycopg's cursor returns for ``stmt``, rolled back."""
    with psycopg.connect(url) as conn:
        cursor = conn.execute(stmt.sql.replace("?", "%s"), stmt.params)
        result = Result(cursor.fetchall() if cursor.description else [], cursor.rowcount)
        conn.rollback()
        return result


def test_each_statement_gets_what_a_cursor_returns_and_the_block_commits(url: str) -> None:
    statements = [
        Stmt(INSERT, ("a", 1, 0.1)),
        Stmt(INSERT, ("b", 2**31 - 1, float("inf"))),
        Stmt(INSERT, ("c", None, -2.5e-300)),
        Stmt("SELECT ?::bigint, ?::text, ?::float8, ?::boolean, ?::text IS NULL", (2**40, "é ü", 1 / 3, True, None)),
        Stmt("SET LOCAL lock_timeout = '5s'", ()),  # a command without a row count: rowcount -1, as a cursor's
    ]
    expected = [cursor_result(url, stmt) for stmt in statements]
    with psycopg.connect(url) as conn, Pipeline(conn) as pipeline:
        got = pipeline.run(statements)
        assert rows(url, "SELECT count(*) FROM t") == [(0,)]  # not committed before the block ends
    assert [r.rows[0][1:] for r in got[:3]] == [r.rows[0][1:] for r in expected[:3]]  # ids differ: sequences
    assert [(type(r.rows[0][0]), r.rowcount) for r in got[:3]] == [(int, 1)] * 3
    assert got[3] == expected[3] == Result([(2**40, "é ü", 1 / 3, True, True)], 1)
    assert got[4] == expected[4] == Result([], -1)
    assert rows(url, "SELECT name, n, x FROM t ORDER BY id") == [r.rows[0][1:] for r in got[:3]]


def test_percent_signs_read_as_a_cursor_reads_them(url: str) -> None:
    """``%%`` is one ``%`` to psycopg, whose cursors the store's SQL is also written for."""
    stmt = Stmt("SELECT ? LIKE '%%x', '100%%'", ("ax",))
    with psycopg.connect(url) as conn, Pipeline(conn) as pipeline:
        assert pipeline.run([stmt]) == [cursor_result(url, stmt)] == [Result([(True, "100%")], 1)]


def test_a_statement_larger_than_the_socket_takes_is_sent_whole(url: str) -> None:
    """libpq sends a large parameter in parts, reading the socket meanwhile."""
    big = "x" * (32 * 2**20)
    stmt = Stmt("SELECT length(?), md5(?)", (big, big))
    with psycopg.connect(url) as conn, Pipeline(conn) as pipeline:
        assert pipeline.run([stmt]) == [cursor_result(url, stmt)]


def test_results_follow_their_statements_across_steps_and_texts(url: str) -> None:
    with psycopg.connect(url) as conn, Pipeline(conn) as pipeline:
        first = pipeline.run([Stmt(INSERT, (name, n, 0.5)) for n, name in enumerate("pqrs")])
        second = pipeline.run(
            [
                Stmt(INSERT, ("q", 9, 9.0)),
                Stmt("UPDATE t SET n = n + ? WHERE n >= ?", (10, 2)),
                Stmt(INSERT, ("z", 7, 1.0)),
            ]
        )
    assert [r.rows[0][1] for r in first] == list("pqrs")
    assert [(r.rows, r.rowcount) for r in second[:2]] == [([], 0), ([], 2)]  # a conflict returns no row
    assert second[2].rows[0][1:] == ("z", 7, 1.0)
    # in the order sent: "z" after the update
    assert rows(url, "SELECT name, n FROM t ORDER BY name") == [("p", 0), ("q", 1), ("r", 12), ("s", 13), ("z", 7)]


def test_a_refused_statement_raises_its_class_rolls_back_and_leaves_the_connection_idle(url: str) -> None:
    with psycopg.connect(url) as conn:
        refused = [Stmt(INSERT, ("big", 2**40, 0.0)), Stmt(INSERT, ("after", 2, 0.0))]
        with pytest.raises(psycopg.errors.NumericValueOutOfRange, match="integer out of range"):
            in_one_transaction(conn, [Stmt(INSERT, ("kept?", 1, 0.0))], refused)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.pgconn.pipeline_status == psycopg.pq.PipelineStatus.OFF
        assert conn.execute("SELECT 1").fetchone() == (1,)  # psycopg's own cursor works on it again
        conn.rollback()
        with Pipeline(conn) as pipeline:  # and so does the pipeline, with what it prepared before
            assert pipeline.run([Stmt(INSERT, ("next", 3, 0.0))])[0].rows[0][1] == "next"
    assert rows(url, "SELECT name FROM t") == [("next",)]


def test_the_servers_errors_are_read_in_the_connections_encoding(url: str) -> None:
    with psycopg.connect(url, client_encoding="latin1") as conn:
        with pytest.raises(psycopg.errors.InvalidTextRepresentation, match='integer: "é"'):
            in_one_transaction(conn, [Stmt("SELECT ?::integer", ("é",))])
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_an_error_of_the_caller_rolls_back_what_was_sent(url: str) -> None:
    with psycopg.connect(url) as conn:
        with pytest.raises(LookupError, match="the caller's own"):
            in_one_transaction(conn, [Stmt(INSERT, ("gone", 1, 0.0))], "the caller's own")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert rows(url, "SELECT count(*) FROM t") == [(0,)]


def test_a_step_that_stops_half_sent_is_rolled_back_whole(url: str) -> None:
    """A parameter psycopg cannot dump stops a step after statements before it went out: they are read
    and rolled back with the rest, and the connection is idle again."""
    with psycopg.connect(url) as conn:
        # the second is refused by the server too, but only read while rolling back: the error raised stays
        # the one that stopped the step
        half = [Stmt(INSERT, ("sent", 1, 0.0)), Stmt(INSERT, ("big", 2**40, 0.0)), Stmt(INSERT, ("x", object(), 0.0))]
        with pytest.raises(psycopg.ProgrammingError, match="cannot adapt"):
            in_one_transaction(conn, [Stmt(INSERT, ("first", 1, 0.0))], half)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        in_one_transaction(conn, [Stmt(INSERT, ("after", 3, 0.0))])
    assert rows(url, "SELECT name FROM t") == [("after",)]


def test_a_statement_is_prepared_once_per_connection_and_parameter_types(url: str) -> None:
    with psycopg.connect(url) as conn:
        for n in range(3):
            with Pipeline(conn) as pipeline:
                pipeline.run([Stmt(INSERT, (f"x{n}", n, 0.0)), Stmt(INSERT, (f"y{n}", None, 1.0))])
        prepared = conn.execute(
            "SELECT statement, parameter_types::text[] FROM pg_prepared_statements ORDER BY 2"
        ).fetchall()
    inserts = [types for statement, types in prepared if statement.startswith("INSERT INTO t")]
    assert len(inserts) == 2  # n as a small integer, and n as NULL: two parameter type lists
    assert all(statement.count("$") == 3 for statement, _ in prepared if statement.startswith("INSERT INTO t"))
    assert rows(url, "SELECT count(*) FROM t") == [(6,)]


def test_a_lost_connection_is_an_operational_error(url: str) -> None:
    with psycopg.connect(url) as conn:
        with pytest.raises(psycopg.OperationalError):
            in_one_transaction(conn, [Stmt(INSERT, ("lost", 1, 0.0))], "terminate", [Stmt(INSERT, ("never", 2, 0.0))])
        assert conn.pgconn.status == psycopg.pq.ConnStatus.BAD
    assert rows(url, "SELECT count(*) FROM t") == [(0,)]
