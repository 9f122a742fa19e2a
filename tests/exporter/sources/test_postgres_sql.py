"""Business metrics against a real PostgreSQL: values, caching, timeouts and per-query failures."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest
from opsloop.testsupport.servers import PostgresServer, free_port, wait_until

from tests.exporter.scrapes import names, scrape, scrape_until, timed_scrape, value

_databases = itertools.count()


@pytest.fixture
def db(postgres_server: PostgresServer) -> tuple[PostgresServer, str]:
    """A fresh database per test, with an orders table holding known rows."""
    name = f"biz{next(_databases)}"
    postgres_server.psql(f"CREATE DATABASE {name}", database="postgres")
    postgres_server.psql(
        "create table orders(status text, amount numeric);"
        "insert into orders values ('paid', 10.5), ('paid', 4.5), ('new', 3), ('refunded', null);"
        "create table ctl(slow boolean); insert into ctl values (false);",
        database=name,
    )
    return postgres_server, postgres_server.dsn.rsplit("/", 1)[0] + "/" + name


def business(dsn: str, *queries: dict[str, Any]) -> dict[str, Any]:
    return {"business": {"dsn": dsn, "queries": list(queries)}}


ORDERS = {
    "name": "orders",
    "sql": "select status, count(*) as count, sum(amount) as amount from orders group by status",
    "labels": ["status"],
    "values": {"count": {"help": "Orders."}, "amount": {"help": "Order value."}},
    "interval": "60s",
}


async def test_values_equal_what_postgres_holds(db, write_config, exporter_client):
    _, dsn = db
    counter = {
        "name": "jobs",
        "sql": "select 'failed' as status, 7 as finished",
        "labels": ["status"],
        "values": {"finished": {"type": "counter", "help": "Finished jobs."}},
    }
    series = await scrape(await exporter_client(write_config(business(dsn, ORDERS, counter))))
    assert value(series, "opsloop_business_orders_count", status="paid") == 2
    assert value(series, "opsloop_business_orders_amount", status="paid") == 15.0
    assert value(series, "opsloop_business_orders_count", status="refunded") == 1
    assert value(series, "opsloop_business_orders_amount", status="refunded") is None  # NULL: skipped
    assert value(series, "opsloop_business_jobs_finished_total", status="failed") == 7
    assert value(series, "opsloop_source_up", source="postgres") == 1
    assert value(series, "opsloop_business_query_errors_total", query="orders") == 0
    assert 0 <= value(series, "opsloop_business_query_result_age_seconds", query="orders") < 5


async def test_interval_serves_cached_result_between_refreshes(db, write_config, exporter_client):
    server, dsn = db
    client = await exporter_client(write_config(business(dsn, ORDERS)))
    assert value(await scrape(client), "opsloop_business_orders_count", status="new") == 1
    server.psql("insert into orders values ('new', 1)", database=dsn.rsplit("/", 1)[1])
    assert value(await scrape(client), "opsloop_business_orders_count", status="new") == 1  # within 60s


async def test_query_past_its_timeout_is_cut_and_last_value_served_with_age(db, write_config, exporter_client):
    server, dsn = db
    slow = {
        "name": "slow",
        "sql": "select count(*) as n from orders, lateral (select pg_sleep(case when (select slow from ctl)"
        " then 30 else 0 end)) s",
        "values": {"n": {"help": "Rows."}},
        "interval": "200ms",
        "timeout": "500ms",
    }
    client = await exporter_client(write_config(business(dsn, slow)))
    assert value(await scrape(client), "opsloop_business_slow_n") == 4
    cached_at = time.time()  # the last good result is at least this old from now on
    server.psql("update ctl set slow = true", database=dsn.rsplit("/", 1)[1])
    # scrapes start refreshes in the background and serve the cached value until one is cut by the timeout
    await scrape_until(client, lambda s: value(s, "opsloop_business_query_errors_total", query="slow") >= 1)
    before, series, _ = await timed_scrape(client)
    assert value(series, "opsloop_business_slow_n") == 4
    assert value(series, "opsloop_business_query_errors_total", query="slow") >= 1
    assert value(series, "opsloop_business_query_result_age_seconds", query="slow") >= before - cached_at
    assert value(series, "opsloop_source_up", source="postgres") == 1  # PostgreSQL itself answers
    running = "select count(*) from pg_stat_activity where query like '%pg_sleep%' and pid <> pg_backend_pid()"
    await asyncio.to_thread(wait_until, lambda: server.psql(running).strip() == "0", 10, "the statement to end")


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("select 'a' as k, 'lots' as v", "not numeric"),
        ("select 'a' as k, 1 as v union all select 'a', 2", "duplicate label set"),
        ("select 'a' as k, 1 as other", "no column v"),
    ],
)
async def test_bad_rows_fail_only_that_query(db, write_config, exporter_client, caplog, sql: str, message: str):
    _, dsn = db
    bad = {"name": "bad", "sql": sql, "labels": ["k"], "values": {"v": {"help": "V."}}}
    series = await scrape(await exporter_client(write_config(business(dsn, ORDERS, bad))))
    assert value(series, "opsloop_business_orders_count", status="paid") == 2
    assert value(series, "opsloop_business_query_errors_total", query="bad") == 1
    assert "opsloop_business_bad_v" not in names(series)
    assert any(message in str(getattr(r, "error", "")) for r in caplog.records)


async def test_postgres_down_at_start_then_up(write_config, exporter_client):
    server = PostgresServer(port=free_port())  # not started yet: nothing listens on its port
    client = await exporter_client(write_config(business(server.dsn, ORDERS) | {"scrape": {"breaker_failures": 100}}))
    series = await scrape(client, timeout=3)
    assert value(series, "opsloop_source_up", source="postgres") == 0
    assert value(series, "opsloop_exporter_build_info", version="0.1.0") == 1
    with server:
        server.psql("create table orders(status text, amount numeric); insert into orders values ('new', 2)")
        # the failed query is retried after 5 s: wait for that, not for a guessed time
        series = await scrape_until(client, lambda s: value(s, "opsloop_source_up", source="postgres") == 1, 20)
    assert value(series, "opsloop_source_up", source="postgres") == 1
    assert value(series, "opsloop_business_orders_count", status="new") == 1


def test_dsn_from_env_and_file(tmp_path, monkeypatch, write_config: Callable[[dict[str, Any]], Any]):
    monkeypatch.setenv("PG_DSN_TEST", "postgresql://env")
    cfg = write_config({"business": {"dsn_env": "PG_DSN_TEST", "queries": []}})
    assert cfg.business.secret("dsn") == "postgresql://env"
    (tmp_path / "dsn").write_text("postgresql://file\n")
    cfg = write_config({"business": {"dsn_file": str(tmp_path / "dsn"), "queries": []}})
    assert cfg.business.secret("dsn") == "postgresql://file"


async def test_labels_are_text_in_a_sql_ascii_database(postgres_server, write_config, exporter_client):
    """SQL_ASCII hands text to the client as bytes; labels stay text, invalid UTF-8 replaced."""
    name = f"ascii{next(_databases)}"
    postgres_server.psql(f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0",
                         database="postgres")  # fmt: skip
    postgres_server.psql(
        "create table orders(status text, amount numeric);"
        "insert into orders values ('paid', 1), ('caf' || convert_from('\\xc3a9', 'SQL_ASCII'), 2),"
        " (convert_from('\\x6f6c64e9', 'SQL_ASCII'), 3);",
        database=name,
    )
    assert postgres_server.psql("show server_encoding", database=name).strip() == "SQL_ASCII"
    dsn = postgres_server.dsn.rsplit("/", 1)[0] + "/" + name
    series = await scrape(await exporter_client(write_config(business(dsn, ORDERS))))
    assert value(series, "opsloop_business_orders_count", status="paid") == 1
    assert value(series, "opsloop_business_orders_count", status="café") == 1  # valid UTF-8 bytes
    assert value(series, "opsloop_business_orders_count", status="old\ufffd") == 1  # latin-1 é replaced
    statuses = {dict(labels)["status"] for metric, labels in series if metric == "opsloop_business_orders_count"}
    assert statuses == {"paid", "café", "old\ufffd"}
