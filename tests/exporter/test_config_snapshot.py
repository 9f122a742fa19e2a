"""The serving exporter's configuration: validated in a child process, served from records.

The oracle is the pydantic load in this process (``load_config``): the records must hold every field
and every resolved secret it holds, and a bad file must get exactly its problems, from a real
``opsloop-exporter`` process whether it is checking or starting.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from opsloop.exporter.config import load_config
from opsloop.exporter.config_snapshot import load_validated
from opsloop.testsupport.servers import LOOPBACK, ManagedProcess, RedisServer, free_port, http_ok
from pydantic import BaseModel

from opsloop.configfile import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "exporter.example.yml"


def assert_same(model: Any, record: Any, where: str = "config") -> None:
    """Every field of the pydantic-loaded ``model`` has the same value in ``record``, recursively."""
    if isinstance(model, BaseModel):
        for name in type(model).model_fields:
            assert_same(getattr(model, name), getattr(record, name), f"{where}.{name}")
        for name in getattr(model, "secret_names", dict)():
            assert record.secret(name) == model.secret(name), f"{where}: secret {name}"
    elif isinstance(model, list):
        assert isinstance(record, list), where
        for i, (m, r) in enumerate(zip(model, record, strict=True)):
            assert_same(m, r, f"{where}[{i}]")
    elif isinstance(model, dict):
        assert isinstance(record, dict), where
        assert list(record) == list(model), where
        for key in model:
            assert_same(model[key], record[key], f"{where}[{key!r}]")
    else:
        assert type(record) is type(model), f"{where}: {record!r} is not a {type(model).__name__}"
        assert record == model, f"{where}: {record!r} != {model!r}"


def test_records_hold_what_the_models_hold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped example (every section, secrets from a file) plus sentinel, cluster, frameworks and env."""
    (tmp_path / "postgres-dsn").write_text("postgresql://opsloop:pw@127.0.0.1/app\n")
    (tmp_path / "redis-password").write_text("s3cret\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("SENTINEL_PASSWORD", "sentinel-s3cret")
    data = yaml.safe_load(EXAMPLE.read_text())
    data["redis"][0]["password_file"] = "${CREDENTIALS_DIRECTORY}/redis-password"
    data["redis"] += [
        {"name": "c", "url": "redis+cluster://127.0.0.1:7000", "seeds": ["redis://127.0.0.1:7001"],
         "max_keys_per_pattern": 5, "discovery_interval": "1m30s"},
        {"name": "s", "mode": "sentinel", "sentinels": ["127.0.0.1:26379"], "primary_name": "mymaster",
         "sentinel_password_env": "SENTINEL_PASSWORD", "password": "inline"},
    ]  # fmt: skip
    data["frameworks"] += [{"redis": "main", "kind": "celery", "queues": ["a", "b"], "priority_steps": [0, 5]}]
    path = tmp_path / "exporter.yml"
    path.write_text(yaml.safe_dump(data))

    records, problems = load_validated(str(path))
    model = load_config(path)
    assert problems == []
    assert records is not None
    assert_same(model, records)
    assert records.redis[0].secret("password") == "s3cret"  # what the file holds, one newline stripped
    assert records.business.secret("dsn") == "postgresql://opsloop:pw@127.0.0.1/app"


def test_records_are_read_only_and_do_not_print_values(tmp_path: Path) -> None:
    path = tmp_path / "exporter.yml"
    path.write_text(yaml.safe_dump({"redis": [{"name": "main", "url": "redis://:pw-in-url@127.0.0.1:1"}]}))
    records, _ = load_validated(str(path))
    assert records is not None
    main = records.redis[0]
    with pytest.raises(AttributeError):
        main.url = "redis://elsewhere"  # type: ignore[misc]
    assert "pw-in-url" not in repr(main)
    assert "url" in repr(main)
    with pytest.raises(AttributeError):
        main.no_such_key  # noqa: B018


BAD = {
    "a type, an unknown key and a bad cross-reference": (
        "redis: [{name: main, url: 'redis://127.0.0.1:1', max_keys_per_pattern: many}]\n"
        "queues: [{redis: main, key: a, colour: red}, {redis: other, key: b}]\n"
    ),
    "a secret file that cannot be read": "redis: [{name: main, url: 'redis://x', password_file: /nonexistent/pw}]\n",
    "a framework on a cluster": "redis: [{name: c, url: 'redis+cluster://h:1'}]\nframeworks: [{redis: c, kind: rq}]\n",
    "invalid YAML": "redis: [\n",
    "not a mapping": "- a\n- b\n",
}


@pytest.mark.parametrize("text", BAD.values(), ids=BAD.keys())
def test_a_bad_file_gets_the_problems_of_the_load(tmp_path: Path, text: str) -> None:
    path = tmp_path / "exporter.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    expected = [f"exporter.yml: {problem}" for problem in raised.value.problems]
    assert expected
    for extra in (["--check-config"], ["--web.listen-address", f"{LOOPBACK}:{free_port()}"]):
        run = subprocess.run(
            [sys.executable, "-m", "opsloop.exporter", "--config.file", "exporter.yml", *extra],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert run.returncode == 1, run.stderr
        assert run.stderr == "".join(f"{line}\n" for line in expected)


def test_an_unreadable_file_gets_the_problem_of_the_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path / "missing.yml")
    assert load_validated(str(tmp_path / "missing.yml")) == (None, raised.value.problems)


def test_the_serving_process_reads_redis_with_a_password_from_a_file(tmp_path: Path) -> None:
    """Resolved secrets reach the serving process: a Redis that requires a password is read."""
    with RedisServer(extra=["--requirepass", "s3cret-pw"]) as server:
        client = redis.Redis(host=LOOPBACK, port=server.port, password="s3cret-pw")
        client.rpush("jobs:a", *range(7))
        (tmp_path / "pw").write_text("s3cret-pw\n")
        config = {
            "redis": [{"name": "main", "url": f"redis://{LOOPBACK}:{server.port}/0", "password_file": "pw"}],
            "queues": [{"redis": "main", "pattern": "jobs:*"}],
        }
        (tmp_path / "exporter.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        proc = ManagedProcess("exporter", tmp_path)
        proc.spawn([sys.executable, "-m", "opsloop.exporter", "--config.file", "exporter.yml",
                    "--web.listen-address", f"{LOOPBACK}:{port}"])  # fmt: skip
        try:
            proc.wait_ready(lambda: http_ok(f"http://{LOOPBACK}:{port}/-/ready"), timeout=60)
            with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=30) as response:
                body = response.read().decode()
        finally:
            proc.stop()
        assert 'opsloop_source_up{source="redis/main"} 1.0' in body
        assert f'opsloop_queue_length{{redis="main",queue="jobs:a"}} {float(client.llen("jobs:a"))}' in body
        client.close()
    assert "s3cret-pw" not in proc.log_path.read_text()
