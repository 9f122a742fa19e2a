"""What a running exporter process imports: each optional library only with the configuration that uses it.

psycopg (business queries, about 9 MiB), bcrypt and the web config models (a ``--web.config.file``) and
aiohttp (which the exporter no longer serves with, about 11 MiB) stay out of a process whose
configuration does not use them; the idle and peak sizes in benchmarks/README.md rely on it. A real
exporter runs with ``python -X importtime``, which lists every module the interpreter loads, and is
scraped once, so the serving path has run too.
"""

from __future__ import annotations

import base64
import re
import sys
import urllib.request
from pathlib import Path
from typing import Any

import bcrypt
import yaml
from opsloop.testsupport.servers import LOOPBACK, ManagedProcess, RedisServer, free_port, port_open

_IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$", re.MULTILINE)
OPTIONAL = ("psycopg", "psycopg_pool", "bcrypt", "aiohttp")


def imported_by_exporter(
    tmp_path: Path, config: dict[str, Any], web_config: dict[str, Any] | None = None, auth: str | None = None
) -> set[str]:
    """The modules a real exporter imported by the end of its first scrape, and their top-level packages."""
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
        request = urllib.request.Request(f"http://{LOOPBACK}:{port}/metrics")
        if auth is not None:
            request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
        with urllib.request.urlopen(request, timeout=30) as response:
            assert b"opsloop_exporter_build_info" in response.read()
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
    assert {"psycopg", "psycopg_pool", "bcrypt", "opsloop.webconfig"} <= modules
    assert "aiohttp" not in modules


def test_the_serving_process_loads_no_validation_library(tmp_path: Path, redis_server: RedisServer) -> None:
    """The configuration is validated in a child process (``config_snapshot``); serving needs none of it.

    Serving modules import the config models for annotations only (under ``TYPE_CHECKING``).
    """
    config = {"redis": [{"name": "main", "url": redis_server.url}], "queues": [{"redis": "main", "pattern": "q:*"}]}
    modules = imported_by_exporter(tmp_path, config)
    assert modules & {"pydantic", "pydantic_core", "yaml", "opsloop.exporter.config", "opsloop.configfile"} == set()
