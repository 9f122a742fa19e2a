"""Configuration: the issue's example works, and each bad config gets its documented message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from opsloop.exporter.config import load_config

from opsloop.configfile import ConfigError
from opsloop.redis_connect import resolve_target

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "exporter.example.yml"


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return err.value.problems


def test_example_config_is_valid(monkeypatch, tmp_path):
    (tmp_path / "postgres-dsn").write_text("postgresql://127.0.0.1/x\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    cfg = load_config(EXAMPLE)
    assert [q.name for q in cfg.business.queries] == ["orders", "jobs", "job_duration"]
    assert cfg.queues[0].key == "queue:emails"
    assert cfg.workers[0].queues == ["emails"]


def test_issue_example_verbatim_is_valid(tmp_path, monkeypatch):
    """The configuration block written in the exporter's specification, unchanged."""
    monkeypatch.setenv("OPSLOOP_PG_DSN", "postgresql://127.0.0.1/x")
    text = (Path(__file__).parent / "data" / "issue-example.yml").read_text()
    assert problems_or_none(tmp_path, text) is None


def problems_or_none(tmp_path: Path, text: str) -> list[str] | None:
    path = tmp_path / "c.yml"
    path.write_text(text)
    try:
        load_config(path)
    except ConfigError as exc:
        return exc.problems
    return None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "redis: [{name: main, url: 'redis://x'}]\nqueues: [{redis: main, key: a}, {redis: main, key: b},"
            " {redis: main, key: 3}]",
            "queues[2].key: expected a string",
        ),
        ("redis: [{name: main, url: 'redis://x', colour: red}]", "redis[0].colour: unknown key"),
        ("queues: [{redis: main}]", "queues[0]: set exactly one of key, pattern"),
        ("queues: [{redis: main, key: a, pattern: 'b*'}]",
         "queues[0]: set exactly one of key, pattern (got key, pattern)"),
        ("redis: [{name: main, url: 'redis://x'}]\nqueues: [{redis: other, key: a}]",
         "queues[0].redis: no redis entry is named 'other'"),
        ("redis: [{name: main, url: 'http://x'}]", "redis[0].url: expected text matching ^(redis|rediss|unix|redis\\+cluster|rediss\\+cluster)://"),
        ("redis: [{name: main}]", "redis[0].url: required key is missing"),
        ("redis: [{name: m, url: 'redis://x'}, {name: m, url: 'redis://y'}]", "redis: name 'm' is used more than once"),
        ("redis: [{name: m, url: 'redis://x', password_env: NOPE_NOT_SET}]",
         "redis[0].password_env: environment variable NOPE_NOT_SET is not set"),
        ("business: {dsn_file: /nonexistent/dsn, queries: []}",
         "business.dsn_file: cannot read secret file /nonexistent/dsn"),
        ("business: {queries: []}", "business: set exactly one of dsn, dsn_env, dsn_file"),
        ("business: {dsn: x, queries: [{name: bad-name, sql: 'select 1', values: {v: {help: h}}}]}",
         "business.queries[0].name: 'bad-name' is not a valid metric name part"),
        ("business: {dsn: x, queries: [{name: q, sql: 'select 1', labels: [v], values: {v: {help: h}}}]}",
         "business.queries[0]: columns cannot be both label and value: v"),
        ("business: {dsn: x, queries: [{name: q, sql: 'select 1', values: {v: {help: h, type: summary}}}]}",
         "business.queries[0].values.v.type: expected one of gauge, counter, got 'summary'"),
        ("business: {dsn: x, queries: [{name: q, sql: 'select 1', values: {v: {help: h}}, interval: soon}]}",
         "business.queries[0].interval: expected a duration such as 30s, 5m or 1h, got 'soon'"),
        ("workers: [{redis: main, name: w}]", "workers[0]: set exactly one of set, heartbeat_pattern"),
        ("redis: [{name: m, mode: sentinel, sentinels: ['127.0.0.1:26379']}]",
         "redis[0]: mode: sentinel needs sentinels (host:port list) and primary_name"),
        ("redis: [{name: m, mode: sentinel, sentinels: ['nohost'], primary_name: p}]",
         "redis[0]: 'nohost' is not a host:port address"),
        ("redis: [{name: m, url: 'redis://x', seeds: ['redis://y']}]", "redis[0]: seeds apply to mode: cluster"),
        ("redis: [{name: m, url: 'redis+cluster://x:1', mode: sentinel, sentinels: ['h:1'], primary_name: p}]",
         "redis[0]: a redis+cluster:// URL cannot be used with mode sentinel"),
        ("redis: [{name: m, url: 'redis://x', primary_name: p}]",
         "redis[0]: sentinels, primary_name and sentinel_password apply to mode: sentinel only"),
        ("redis: [{name: m, mode: cluster}]", "redis[0].url: required key is missing"),
        ("redis: [{name: m, mode: sentinel, sentinels: ['h:1'], primary_name: p, sentinel_password_env: NOPE_NOT_SET}]",
         "redis[0].sentinel_password_env: environment variable NOPE_NOT_SET is not set"),
        ("redis: [{name: c, url: 'redis+cluster://h:1'}]\nframeworks: [{redis: c, kind: rq}]",
         "frameworks[0].redis: 'c' is a Redis Cluster; framework scripts derive key names inside Redis"),
        ("- just\n- a list", "(top level): expected a mapping"),
        ("redis: [", "invalid YAML"),
    ],
)  # fmt: skip
def test_bad_config_messages(tmp_path: Path, text: str, expected: str):
    found = problems(tmp_path, text)
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_is_reported_at_once(tmp_path):
    found = problems(tmp_path, "redis: [{name: main, url: 'redis://x', extra: 1}]\nqueues: [{redis: main, key: 5}]")
    assert found == ["redis[0].extra: unknown key", "queues[0].key: expected a string"]


def test_secret_from_file_strips_one_newline(tmp_path):
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "c.yml").write_text(
        yaml.safe_dump({"redis": [{"name": "m", "url": "redis://x", "password_file": str(tmp_path / "pw")}]})
    )
    assert load_config(tmp_path / "c.yml").redis[0].resolve_password() == "s3cret"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opsloop.exporter", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
    )


def test_check_config_cli_exit_codes(tmp_path):
    import os

    (tmp_path / "postgres-dsn").write_text("postgresql://x\n")
    ok = run_cli("--config", str(EXAMPLE), "--check-config", env={**os.environ, "CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert ok.returncode == 0, ok.stderr
    assert "configuration is valid" in ok.stdout
    bad = tmp_path / "bad.yml"
    bad.write_text("queues: [{redis: main, key: 5, colour: red}]")
    failed = run_cli("--config", str(bad), "--check-config")
    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert f"{bad}: queues[0].key: expected a string" in lines
    assert f"{bad}: queues[0].colour: unknown key" in lines
    missing = run_cli("--config", str(tmp_path / "nope.yml"), "--check-config")
    assert missing.returncode == 1
    assert "cannot read file" in missing.stderr
    listen = run_cli("--config", str(bad), "--web.listen-address", "nonsense")
    # A flag error, reported by the flag parser with the flag's name, not as a line of the config file.
    assert listen.returncode == 2
    assert "argument --web.listen-address: expected HOST:PORT" in listen.stderr
    assert str(bad) not in listen.stderr


def test_cluster_and_sentinel_entries_load(tmp_path):
    (tmp_path / "c.yml").write_text(
        "redis:\n"
        "  - {name: c, url: 'redis+cluster://127.0.0.1:7000', seeds: ['redis://127.0.0.1:7001']}\n"
        "  - {name: s, mode: sentinel, sentinels: ['127.0.0.1:26379'], primary_name: main}\n"
    )
    cluster, sentinel = load_config(tmp_path / "c.yml").redis
    cluster_target, sentinel_target = (resolve_target(r, r.url, r.resolve_password()) for r in (cluster, sentinel))
    assert cluster_target.mode == "cluster"
    assert cluster_target.cluster_nodes() == [("127.0.0.1", 7000), ("127.0.0.1", 7001)]
    assert sentinel_target.mode == "sentinel"
    assert sentinel_target.sentinels == (("127.0.0.1", 26379),)
    assert cluster.max_keys_per_pattern == 100_000
