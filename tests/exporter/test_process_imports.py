"""What a running exporter process imports: each optional library only with the configuration that uses it.

psycopg (business queries, about 9 MiB), bcrypt (basic auth in a ``--web.config.file``) and aiohttp
(which the exporter no longer serves with, about 11 MiB) stay out of a process whose configuration does
not use them, and pydantic with the config models stays out of every serving process (both files are
validated in a child); the idle and peak sizes in benchmarks/README.md rely on it. A real exporter runs
with ``python -X importtime``, which lists every module the interpreter loads, and is scraped, so the
serving path has run too.
"""

from __future__ import annotations

import base64
import re
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bcrypt
import yaml
from opsloop.testsupport.servers import LOOPBACK, ManagedProcess, RedisServer, free_port, port_open

_IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$", re.MULTILINE)
OPTIONAL = ("psycopg", "psycopg_pool", "bcrypt", "aiohttp")
VALIDATION = {"pydantic", "pydantic_core", "yaml", "opsloop.exporter.config", "opsloop.configfile", "opsloop.webconfig"}


def scrape_status(port: int, auth: str | None) -> int:
    request = urllib.request.Request(f"http://{LOOPBACK}:{port}/metrics")
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            assert b"opsloop_exporter_build_info" in response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def imported_by_exporter(
    tmp_path: Path,
    config: dict[str, Any],
    web_config: dict[str, Any] | None = None,
    auth: str | None = None,
    then: Callable[[ManagedProcess, int], None] | None = None,
) -> set[str]:
    """The modules a real exporter imported by the end of its scrapes, and their top-level packages.

    ``then`` runs after the first scrape (which must succeed) with the process and its port.
    """
    (tmp_path / "exporter.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    args = ["--config.file", "exporter.yml", "--web.listen-address", f"{LOOPBACK}:{port}"]
    if web_config is not None:
        (tmp_path / "web.yml").write_text(yaml.safe_dump(web_config))
        args += ["--web.config.file", "web.yml"]
    proc = ManagedProcess("exporter", tmp_path)
    proc.spawn([sys.executable, "-X", "importtime", "-m", "opsloop.exporter", *args])
    try:
        proc.wait_ready(lambda: port_open(port), timeout=30)  # basic auth answers 401 to a bare probe
        assert scrape_status(port, auth) == 200
        if then is not None:
            then(proc, port)
    finally:
        proc.stop()
    modules = set(_IMPORTED.findall(proc.log_path.read_text()))
    modules |= {name.split(".")[0] for name in modules}
    assert {"asyncio", "redis.asyncio", "prometheus_client"} <= modules, "importtime output not parsed"
    return modules


def test_a_redis_only_exporter_imports_no_optional_library(tmp_path: Path, redis_server: RedisServer) -> None:
    config = {"redis": [{"name": "main", "url": redis_server.url}], "queues": [{"redis": "main", "pattern": "q:*"}]}
    modules = imported_by_exporter(tmp_path, config)
    assert modules & set(OPTIONAL) == set()
    assert "opsloop.webconfig" not in modules  # the web config models: only with --web.config.file


def test_business_queries_import_psycopg_and_basic_auth_imports_bcrypt(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """The other side: the same check sees each library once its configuration uses it."""
    config = {
        "redis": [{"name": "main", "url": redis_server.url}],
        "queues": [{"redis": "main", "pattern": "q:*"}],
        # Nothing listens there: the query fails and is reported in metrics; the import is what is checked.
        "business": {"dsn": f"postgresql://opsloop@{LOOPBACK}:{free_port()}/none", "queries": []},
    }
    web = {"basic_auth_users": {"prometheus": bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()}}
    modules = imported_by_exporter(tmp_path, config, web, auth="prometheus:pw")
    assert {"psycopg", "psycopg_pool", "bcrypt"} <= modules
    assert "aiohttp" not in modules


def test_a_web_config_and_its_reload_are_validated_outside_the_serving_process(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """A changed password applies after SIGHUP, and neither the start nor the reload loaded pydantic here."""
    config = {"redis": [{"name": "main", "url": redis_server.url}], "queues": [{"redis": "main", "pattern": "q:*"}]}

    def change_password(proc: ManagedProcess, port: int) -> None:
        new = {"basic_auth_users": {"prometheus": bcrypt.hashpw(b"new", bcrypt.gensalt(rounds=4)).decode()}}
        (tmp_path / "web.yml").write_text(yaml.safe_dump(new))
        proc.signal(signal.SIGHUP)
        proc.wait_ready(lambda: scrape_status(port, "prometheus:new") == 200, timeout=30)
        assert scrape_status(port, "prometheus:pw") == 401

    web = {"basic_auth_users": {"prometheus": bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()}}
    modules = imported_by_exporter(tmp_path, config, web, auth="prometheus:pw", then=change_password)
    assert "bcrypt" in modules
    assert modules & VALIDATION == set()


def test_the_serving_process_loads_no_validation_library(tmp_path: Path, redis_server: RedisServer) -> None:
    """The configuration is validated in a child process (``config_snapshot``); serving needs none of it.

    Serving modules import the config models for annotations only (under ``TYPE_CHECKING``).
    """
    config = {"redis": [{"name": "main", "url": redis_server.url}], "queues": [{"redis": "main", "pattern": "q:*"}]}
    modules = imported_by_exporter(tmp_path, config)
    assert modules & VALIDATION == set()
