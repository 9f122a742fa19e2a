"""The sql action against a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from opsloop.receiver.actions import Action, ActionResult
from opsloop.receiver.actions.base import Progress
from opsloop.testsupport.servers import LOOPBACK, PostgresServer, free_port, wait_until


@pytest.fixture
def dsn(postgres_server: PostgresServer) -> str:
    """A database of this test's own."""
    return postgres_server.create_database("sql_action")


@pytest.fixture
def db(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """A table of feature flags in the test's database."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE action_flags (name text PRIMARY KEY, value text NOT NULL)")
        conn.execute("INSERT INTO action_flags VALUES ('checkout', 'on'), ('search', 'on')")
        yield conn


@pytest.fixture
def sql(dsn: str, make_action: Callable[..., Action]) -> Callable[..., Action]:
    return lambda statement, **options: make_action(
        type="sql", dsn=dsn, statement=statement, **{"name": "flag-off", **options}
    )


def flags(db: psycopg.Connection[Any]) -> dict[str, str]:
    return dict(db.execute("SELECT name, value FROM action_flags").fetchall())


async def test_values_are_bound_parameters(db: psycopg.Connection[Any], sql: Callable[..., Action]) -> None:
    action = sql("UPDATE action_flags SET value = %(state)s || '%%' WHERE name = %(flag)s")
    result = await action.run({"flag": "checkout", "state": "off"})
    assert (result.ok, result.detail) == (True, "flag-off: 1 rows")
    assert flags(db) == {"checkout": "off%", "search": "on"}


async def test_injection_attempts_are_plain_data(db: psycopg.Connection[Any], sql: Callable[..., Action]) -> None:
    action = sql("UPDATE action_flags SET value = %(state)s WHERE name = %(flag)s")
    result = await action.run({"flag": "x' OR '1'='1", "state": "off'; DROP TABLE action_flags; --"})
    assert (result.ok, result.detail) == (True, "flag-off: 0 rows")
    assert flags(db) == {"checkout": "on", "search": "on"}


async def test_ending_idle_connections_of_an_application(
    postgres_server: PostgresServer, sql: Callable[..., Action]
) -> None:
    statement = (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = %(app)s AND state = 'idle' AND pid <> pg_backend_pid()"
    )
    with psycopg.connect(postgres_server.dsn, application_name="leaky-worker", autocommit=True) as victim:
        victim.execute("SELECT 1")
        result = await sql(statement, name="end-idle").run({"app": "leaky-worker"})
        assert (result.ok, result.detail) == (True, "end-idle: 1 rows")
        with pytest.raises(psycopg.OperationalError):
            victim.execute("SELECT 1")


async def test_the_timeout_ends_the_statement_on_the_server(
    postgres_server: PostgresServer, db: psycopg.Connection[Any], sql: Callable[..., Action]
) -> None:
    started = time.monotonic()
    result = await sql("SELECT pg_sleep(30) WHERE %(x)s = 'x'", timeout="500ms").run({"x": "x"})
    assert not result.ok
    assert "timed out after 0.5s" in result.detail or "statement timeout" in result.detail
    assert time.monotonic() - started < 3
    left = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%' AND state = 'active'"
    wait_until(lambda: db.execute(left).fetchone() == (0,), 5, "the server to cancel the statement")


async def test_the_timeout_is_enforced_by_the_server_alone(sql: Callable[..., Action]) -> None:
    """Without the client-side deadline of ``run()``, only the server's statement_timeout ends the sleep."""
    action = sql("SELECT pg_sleep(30) WHERE %(x)s = 'x'", timeout="500ms")
    # _run is the body that run() wraps in asyncio.timeout; the outer bound only keeps a broken build from hanging
    result = await asyncio.wait_for(action._run({"x": "x"}, False, Progress()), 10)
    assert result == ActionResult(False, "QueryCanceled: canceling statement due to statement timeout")


async def test_a_failed_statement_changes_nothing(db: psycopg.Connection[Any], sql: Callable[..., Action]) -> None:
    action = sql("WITH changed AS (UPDATE action_flags SET value = %(state)s RETURNING 1) SELECT 1/0 FROM changed")
    result = await action.run({"state": "off"})
    assert (result.ok, result.detail) == (False, "DivisionByZero: division by zero")
    assert flags(db) == {"checkout": "on", "search": "on"}


@pytest.mark.parametrize("first", ["UPDATE action_flags SET value = %(state)s", "UPDATE action_flags SET value = 'x'"])
async def test_only_one_statement_runs(db: psycopg.Connection[Any], sql: Callable[..., Action], first: str) -> None:
    result = await sql(first + "; DROP TABLE action_flags").run({"state": "off"})
    assert (result.ok, result.detail) == (
        False,
        "SyntaxError: cannot insert multiple commands into a prepared statement",
    )
    assert flags(db) == {"checkout": "on", "search": "on"}


async def test_dsn_from_the_environment_and_an_unreachable_server(
    postgres_server: PostgresServer, make_action: Callable[..., Action], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLOOP_TEST_DSN", postgres_server.dsn)
    assert (await make_action(type="sql", dsn_env="OPSLOOP_TEST_DSN", statement="SELECT 1").run({})).ok
    dsn = f"postgresql://nobody:pw-not-shown@127.0.0.1:{free_port()}/x"
    result = await make_action(type="sql", dsn=dsn, statement="SELECT 1").run({})
    assert not result.ok
    assert result.detail.startswith("OperationalError")
    assert "pw-not-shown" not in result.detail


async def test_dry_run_and_missing_values_touch_nothing(
    db: psycopg.Connection[Any], sql: Callable[..., Action]
) -> None:
    action = sql("DELETE FROM action_flags WHERE name = %(flag)s")
    dry = await action.run({"flag": "checkout"}, dry_run=True)
    assert (dry.ok, dry.dry_run, dry.detail) == (True, True, "would run flag-off with {'flag': 'checkout'}")
    missing = await action.run({"other": "x"})
    assert (missing.ok, missing.detail) == (False, "MissingValue: no value for {flag} (known: other)")
    assert flags(db) == {"checkout": "on", "search": "on"}


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://ops:tok3n-secret@[::1/x",  # libpq's message quotes the whole URI
        "host=127.0.0.1 password=tok3n-secret nonsense=1",
        "host=127.0.0.1 password='tok3n-secret",
    ],
)
def test_a_malformed_dsn_is_a_config_error_that_does_not_echo_it(make_action: Callable[..., Action], dsn: str) -> None:
    with pytest.raises(ValueError, match="not a valid PostgreSQL connection string") as raised:
        make_action(type="sql", name="flag-off", dsn=dsn, statement="SELECT 1")
    assert "tok3n-secret" not in str(raised.value)
    assert raised.value.__cause__ is None  # the parser's own message is not chained either
    assert raised.value.__suppress_context__


async def test_an_error_quoting_the_password_is_replaced_by_a_generic_message(
    postgres_server: PostgresServer, make_action: Callable[..., Action]
) -> None:
    # The server names the role in its answer; here the role name is the password, as a stand-in for any
    # libpq or server text that quotes a part of the DSN.
    dsn = f"host={LOOPBACK} port={postgres_server.port} dbname=postgres user=tok3n-secret password=tok3n-secret"
    result = await make_action(type="sql", dsn=dsn, statement="SELECT 1").run({})
    assert not result.ok
    assert result.detail.startswith("OperationalError: the database call failed")
    assert "tok3n-secret" not in result.detail
