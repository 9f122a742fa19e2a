"""The real thing: redis-server, PostgreSQL, the exporter, a receiver and Prometheus with the rendered rules.

Under load, every rule expression and every dashboard query goes through Prometheus' HTTP API: each must
be valid, read only metrics the exporter really emits (or series the rules record), and every dashboard
query must return data.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from opsloop.render.promql import metric_names
from opsloop.testsupport.servers import LOOPBACK, PostgresServer, PrometheusServer, RedisServer, free_port
from opsloop.testsupport.services import spawn_service

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
GRAFANA_VARIABLES = {
    "$__rate_interval": "15s", "$job": "opsloop", "$instance": ".+", "$queue": ".+", "$framework": ".*",
}  # fmt: skip
PROMETHEUS_SERIES = {"ALERTS"}  # made by Prometheus itself, present only while an alert is pending or firing
SCHEMA = """
create table jobs (id serial primary key, status text not null, started_at timestamptz not null,
                   finished_at timestamptz);
create table orders (id serial primary key, status text not null, amount numeric not null,
                     created_at timestamptz not null default now());
"""


@dataclass(frozen=True)
class Stack:
    prometheus: str


def exporter_config(redis_url: str, dsn: str) -> dict[str, Any]:
    """Queues (list and stream), DLQs by pattern, workers serving a queue, cache, and the business queries."""
    example = yaml.safe_load((REPO / "deploy" / "exporter.example.yml").read_text())
    queries = [dict(q, interval="1s") for q in example["business"]["queries"]]
    return {
        "redis": [{"name": "main", "url": redis_url, "discovery_interval": "1s"}],
        "queues": [
            {"name": "emails", "redis": "main", "key": "queue:emails", "oldest_age": {"field": "enqueued_at"}},
            {"name": "events", "redis": "main", "key": "queue:events"},
        ],
        "dlqs": [{"redis": "main", "pattern": "dlq:*", "oldest_age": {"field": "failed_at"}}],
        "cache": [{"redis": "main"}],
        "workers": [{"redis": "main", "name": "mailer", "set": "workers:mailer", "queues": ["emails"]}],
        "frameworks": [{"redis": "main", "kind": "rq", "queues": ["default"]}],
        "business": {"dsn": dsn, "queries": queries},
    }


def fill_redis(client: redis.Redis) -> None:
    now = time.time()
    client.lpush("queue:emails", *(json.dumps({"id": i, "enqueued_at": now - 120 + i}) for i in range(20)))
    for i in range(5):
        client.xadd("queue:events", {"id": str(i)})
    client.xgroup_create("queue:events", "senders", id="0")
    client.xreadgroup("senders", "sender-1", {"queue:events": ">"}, count=2)
    client.lpush("dlq:emails", *(json.dumps({"id": i, "failed_at": now - 60}) for i in range(3)))
    client.sadd("workers:mailer", "worker-1", "worker-2")


def load(client: redis.Redis, postgres: PostgresServer, database: str, rounds: int) -> None:
    """Bounded traffic: cache hits and misses, queue and DLQ growth, and finished jobs (some failed)."""
    for i in range(rounds):
        client.set(f"cache:user:{i}", "x")
        client.get(f"cache:user:{i}")
        client.get(f"cache:missing:{i}")
        client.lpush("queue:emails", json.dumps({"id": 100 + i, "enqueued_at": time.time()}))
        client.lpush("dlq:emails", json.dumps({"id": 100 + i, "failed_at": time.time()}))
        status = "failed" if i % 4 == 0 else "succeeded"
        postgres.psql(
            "insert into jobs (status, started_at, finished_at) "
            f"values ('{status}', now() - interval '{i + 2} seconds', now());"
            f"insert into orders (status, amount) values ('paid', {10 + i});",
            database=database,
        )
        time.sleep(0.5)


def query(prometheus: str, expr: str) -> dict[str, Any]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        return json.load(exc)


def get(prometheus: str, path: str) -> Any:
    with urllib.request.urlopen(f"{prometheus}{path}", timeout=10) as resp:
        return json.load(resp)["data"]


def grafana_to_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def dashboard_queries() -> list[tuple[str, str]]:
    out = []
    for path in sorted((REPO / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        out += [(f"{path.stem}: {p['title']}", t["expr"]) for p in board["panels"] for t in p["targets"]]
    return out


def rule_expressions() -> list[tuple[str, str]]:
    out = []
    for path in sorted((REPO / "rules").glob("opsloop-*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            out += [(rule.get("alert") or rule["record"], rule["expr"]) for rule in group["rules"]]
    return out


def _has_data(prometheus: str, expr: str) -> bool:
    result = query(prometheus, grafana_to_promql(expr))
    return result["status"] == "success" and bool(result["data"]["result"])


@pytest.fixture(scope="module")
def stack(postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    dsn = postgres_server.create_database("rules")
    database = dsn.rsplit("/", 1)[1]
    postgres_server.psql(SCHEMA, database=database)
    workdir = tmp_path_factory.mktemp("exporter")
    with RedisServer(maxmemory="64mb") as redis_server, contextlib.ExitStack() as cleanup:
        client = redis.Redis.from_url(redis_server.url)
        cleanup.callback(client.close)
        fill_redis(client)
        config = workdir / "exporter.yml"
        config.write_text(yaml.safe_dump(exporter_config(redis_server.url, dsn), sort_keys=False))
        receiver_config = workdir / "receiver.yml"
        receiver_config.write_text(
            yaml.safe_dump({"auth": {"bearer_token": "t"}, "store": f"sqlite:///{workdir / 'receiver.db'}"})
        )
        targets: dict[str, list[str]] = {}
        for name, job, path in (("exporter", "opsloop", config), ("receiver", "opsloop-receiver", receiver_config)):
            port = free_port()
            cleanup.callback(spawn_service(name, path, port, workdir).stop)
            targets[job] = [f"{LOOPBACK}:{port}"]
        rule_files = sorted((REPO / "rules").glob("opsloop-*.yml"))
        with PrometheusServer(targets, rule_files=rule_files) as prometheus:
            load(client, postgres_server, database, rounds=12)
            deadline = time.monotonic() + 60
            pending = dashboard_queries()
            while pending and time.monotonic() < deadline:
                pending = [(name, expr) for name, expr in pending if not _has_data(prometheus.url, expr)]
                time.sleep(0.5)
            yield Stack(prometheus.url)


def test_prometheus_loaded_every_rule_healthy(stack: Stack) -> None:
    groups = get(stack.prometheus, "/api/v1/rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == len(rule_expressions())
    assert [r["name"] for r in rules if r["health"] != "ok"] == []


def test_every_rule_expression_is_valid_and_reads_emitted_metrics(stack: Stack) -> None:
    emitted = set(get(stack.prometheus, "/api/v1/label/__name__/values"))
    recorded = {name for name, expr in rule_expressions() if ":" in name}
    assert recorded <= emitted, "every recording rule produced a series"
    for name, expr in rule_expressions():
        result = query(stack.prometheus, expr)
        assert result["status"] == "success", (name, result.get("error"))
        assert metric_names(expr) <= emitted, (name, metric_names(expr) - emitted)


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    emitted = set(get(stack.prometheus, "/api/v1/label/__name__/values"))
    empty = []
    for name, expr in dashboard_queries():
        result = query(stack.prometheus, grafana_to_promql(expr))
        assert result["status"] == "success", (name, result.get("error"))
        assert metric_names(expr) <= emitted, (name, metric_names(expr) - emitted)
        if not result["data"]["result"]:
            empty.append(name)
    assert empty == []


def test_dashboard_variables_and_annotation_are_valid(stack: Stack) -> None:
    for path in sorted((REPO / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        for annotation in board["annotations"]["list"]:
            result = query(stack.prometheus, grafana_to_promql(annotation["expr"]))
            assert result["status"] == "success", result.get("error")
            assert metric_names(annotation["expr"]) - PROMETHEUS_SERIES == set()
        for variable in board["templating"]["list"]:
            if variable["type"] != "query":
                continue
            metric, label = variable["query"].removeprefix("label_values(").removesuffix(")").rsplit(",", 1)
            series = get(
                stack.prometheus, "/api/v1/series?" + urllib.parse.urlencode({"match[]": grafana_to_promql(metric)})
            )
            values = {s[label.strip()] for s in series}
            assert values, variable["name"]
            if variable["name"] == "queue":
                assert values == {"emails", "events", "default"}
            if variable["name"] == "framework":
                assert values == {"rq"}
