"""Certificates made by the tests (trustme), web config files, and the services run as processes."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest
import trustme
import yaml
from opsloop.testsupport.servers import LOOPBACK, free_port, port_open

PASSWORD = "s3cret-scrape-password"


@dataclass
class Certs:
    ca: trustme.CA
    dir: Path
    server_cert: Path
    server_key: Path
    ca_file: Path
    client_cert: Path
    client_key: Path


def write_certs(directory: Path, ca: trustme.CA | None = None) -> Certs:
    ca = ca or trustme.CA()
    directory.mkdir(parents=True, exist_ok=True)
    server = ca.issue_cert(LOOPBACK, "localhost")
    client = ca.issue_cert("prometheus@example.com")
    paths = {name: directory / f"{name}.pem" for name in ("server", "server-key", "ca", "client", "client-key")}
    paths["server"].write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    paths["server-key"].write_bytes(server.private_key_pem.bytes())
    paths["ca"].write_bytes(ca.cert_pem.bytes())
    paths["client"].write_bytes(b"".join(blob.bytes() for blob in client.cert_chain_pems))
    paths["client-key"].write_bytes(client.private_key_pem.bytes())
    return Certs(ca, directory, paths["server"], paths["server-key"], paths["ca"], paths["client"], paths["client-key"])


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return write_certs(tmp_path / "certs")


def bcrypt_hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def write_web_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class Service:
    """opsloop-exporter or opsloop-receiver started as a process, the way an operator starts it."""

    def __init__(self, program: str, args: list[str], workdir: Path) -> None:
        self.log_path = workdir / f"{program}-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"opsloop.{program}", *args], stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def wait_listening(self, port: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not port_open(port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"not listening on {port}:\n{self.log}")
            time.sleep(0.05)

    def wait_exit(self, timeout: float = 20.0) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def services(tmp_path: Path) -> Iterator[callable]:
    started: list[Service] = []

    def start(program: str, *args: str) -> Service:
        service = Service(program, list(args), tmp_path)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def exporter_config(tmp_path: Path) -> Path:
    """A config that is valid and reads a Redis nobody listens on: the metrics say it is down."""
    path = tmp_path / "exporter.yml"
    path.write_text(yaml.safe_dump({"redis": [{"name": "main", "url": f"redis://{LOOPBACK}:{free_port()}/0"}],
                                    "cache": [{"redis": "main"}]}))  # fmt: skip
    return path
