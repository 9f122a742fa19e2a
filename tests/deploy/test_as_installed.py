"""Each program started the way its systemd unit starts it, with the example config unchanged except
for addresses, and the credentials the unit declares; the unit, the config and docker-compose agree."""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from opsloop.testsupport.servers import LOOPBACK, PostgresServer, RedisServer, free_port, http_ok

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROGRAMS = {"exporter": "exporter.example.yml", "receiver": "receiver.example.yml"}
CREDENTIAL = re.compile(r"^\$\{CREDENTIALS_DIRECTORY\}/([\w.-]+)$")


def unit(program: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    text = (DEPLOY / "systemd" / f"opsloop-{program}.service").read_text()
    # configparser keeps only the last of repeated keys: number LoadCredential= lines apart.
    count = iter(range(1000))
    parser.read_string(re.sub(r"^LoadCredential=", lambda _: f"LoadCredential{next(count)}=", text, flags=re.M))
    return parser["Service"]


def unit_credentials(program: str) -> dict[str, str]:
    """LoadCredential=name:source lines of the unit, as {name: source}."""
    service = unit(program)
    pairs = [service[key].split(":", 1) for key in service if key.startswith("LoadCredential")]
    return dict(pairs)


def config_credentials(data: Any) -> set[str]:
    """Every ``${CREDENTIALS_DIRECTORY}/name`` value in a parsed config."""
    if isinstance(data, dict):
        return set().union(*(config_credentials(v) for v in data.values())) if data else set()
    if isinstance(data, list):
        return set().union(*(config_credentials(v) for v in data)) if data else set()
    match = CREDENTIAL.match(data) if isinstance(data, str) else None
    return {match.group(1)} if match else set()


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_unit_config_and_compose_name_the_same_credentials(program: str) -> None:
    config = yaml.safe_load((DEPLOY / PROGRAMS[program]).read_text())
    declared = unit_credentials(program)
    assert config_credentials(config) == set(declared), "LoadCredential= lines and the config's *_file keys"
    assert all(source == f"/etc/opsloop/secrets/{name}" for name, source in declared.items())
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert set(compose["services"][program]["secrets"]) == set(declared), "compose secrets"
    assert "ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 CREDENTIALS_DIRECTORY=/run/secrets" in re.sub(
        r"\s*\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text()
    )


def exec_start(program: str, config: Path, port: int) -> list[str]:
    """The unit's ExecStart with this environment's script, the test's config path and a free port."""
    argv = unit(program)["ExecStart"].split()
    assert argv[0] == f"/opt/opsloop/bin/opsloop-{program}"
    argv[0] = str(Path(sys.executable).with_name(f"opsloop-{program}"))
    argv[argv.index("--config.file") + 1] = str(config)
    argv[argv.index("--web.listen-address") + 1] = f"{LOOPBACK}:{port}"
    return argv


def readdress(program: str, text: str, redis: RedisServer, tmp_path: Path) -> str:
    """Only addresses change: Redis, and the receiver's SQLite store under the unit's StateDirectory=."""
    text = text.replace("redis://127.0.0.1:6379/0", redis.url)
    if program == "receiver":
        assert unit(program)["StateDirectory"] == "opsloop-receiver"
        text = text.replace("sqlite:///var/lib/opsloop-receiver/receiver.db", f"sqlite://{tmp_path}/receiver.db")
    return text


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_program_starts_as_its_unit_starts_it(program: str, postgres_server: PostgresServer, tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o700)
    secrets = {
        "postgres-dsn": postgres_server.dsn, "opsloop-token": "t" * 32, "opsloop-admin-token": "a" * 32,
        "slack-oncall": "http://127.0.0.1:9/oncall", "slack-ui-team": "http://127.0.0.1:9/ui", "smtp": "pw",
    }  # fmt: skip
    for name in unit_credentials(program):
        (credentials / name).write_text(secrets[name] + "\n")
    with RedisServer(workdir=tmp_path / "redis") as redis:
        config = tmp_path / f"{program}.yml"
        original = (DEPLOY / PROGRAMS[program]).read_text()
        config.write_text(readdress(program, original, redis, tmp_path))
        port = free_port()
        env = {**os.environ, "CREDENTIALS_DIRECTORY": str(credentials)}
        log = (tmp_path / "service.log").open("w")
        proc = subprocess.Popen(exec_start(program, config, port), env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while not http_ok(f"http://{LOOPBACK}:{port}/-/ready"):
                assert proc.poll() is None, (tmp_path / "service.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "service.log").read_text()
                time.sleep(0.2)
            with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/-/ready", timeout=5) as resp:
                assert resp.status == 200
        finally:
            proc.terminate()
            proc.wait(10)
            log.close()
    assert "level=error" not in (tmp_path / "service.log").read_text()
