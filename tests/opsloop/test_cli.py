"""The flags both services share, checked on the running programs against independent oracles."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from opsloop.testsupport.servers import LOOPBACK, free_port
from prometheus_client.parser import text_string_to_metric_families

from opsloop import __version__
from tests.opsloop.conftest import Service
from tests.opsloop.test_webguard import get
from tests.receiver.harness import write_config

PROGRAMS = ["exporter", "receiver"]


def git_head() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).parent).stdout.strip()  # fmt: skip


def config_for(program: str, exporter_config: Path, tmp_path: Path) -> Path:
    return exporter_config if program == "exporter" else write_config(tmp_path)


def run(program: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", f"opsloop.{program}", *args], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


@pytest.mark.parametrize("program", PROGRAMS)
def test_version(program: str) -> None:
    done = run(program, "--version")
    assert done.returncode == 0
    first, *rest = done.stdout.splitlines()
    assert first == f"opsloop-{program}, version {__version__} (revision: {git_head()})"
    fields = dict(line.strip().split(":", 1) for line in rest)
    assert fields["python version"].strip() == platform.python_version()
    assert fields["build date"].strip() != "unknown"


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("flag", ["--config.file", "--config"])
def test_config_file_flag_and_its_old_name(program: str, flag: str, exporter_config: Path, tmp_path: Path) -> None:
    config = config_for(program, exporter_config, tmp_path)
    done = run(program, flag, str(config), "--check-config")
    assert done.returncode == 0, done.stderr
    assert f"{config}: configuration is valid" in done.stdout


@pytest.mark.parametrize("program", PROGRAMS)
def test_metrics_path_build_info_landing_page_and_no_created(
    program: str, services: Callable[..., Service], exporter_config: Path, tmp_path: Path
) -> None:
    port = free_port()
    config = str(config_for(program, exporter_config, tmp_path))
    service = services(program, "--config.file", config, "--web.listen-address", f"{LOOPBACK}:{port}",
                       "--web.telemetry-path", "/custom/metrics")  # fmt: skip
    service.wait_listening(port)
    base = f"http://{LOOPBACK}:{port}"
    assert get(f"{base}/metrics")[0] == 404
    status, _, body = get(f"{base}/custom/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(body)}
    (sample,) = families["opsloop_build_info"].samples
    assert sample.labels == {"version": __version__, "revision": git_head(), "pythonversion": platform.python_version()}
    assert not [line for line in body.splitlines() if "_created" in line]
    status, headers, page = get(f"{base}/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert 'href="custom/metrics"' in page
    assert f"opsloop {program} {__version__}" in page


@pytest.mark.parametrize("program", PROGRAMS)
def test_log_format_and_level(
    program: str, services: Callable[..., Service], exporter_config: Path, tmp_path: Path
) -> None:
    config = str(config_for(program, exporter_config, tmp_path))
    port = free_port()
    logfmt = services(program, "--config.file", config, "--web.listen-address", f"{LOOPBACK}:{port}")
    logfmt.wait_listening(port)
    logfmt.stop()
    line = next(line for line in logfmt.log.splitlines() if " msg=listening " in line)
    assert line.startswith("ts=")
    assert " level=info " in line
    assert f"address={LOOPBACK}:{port}" in line
    port = free_port()
    as_json = services(program, "--config.file", config, "--web.listen-address", f"{LOOPBACK}:{port}",
                       "--log.format", "json")  # fmt: skip
    as_json.wait_listening(port)
    as_json.stop()
    records = [json.loads(line) for line in as_json.log.splitlines()]
    (listening,) = [r for r in records if r["msg"] == "listening"]
    assert (listening["level"], listening["address"]) == ("info", f"{LOOPBACK}:{port}")
    for level in ("warn", "warning"):
        port = free_port()
        quiet = services(program, "--config.file", config, "--web.listen-address", f"{LOOPBACK}:{port}",
                         "--log.level", level)  # fmt: skip
        quiet.wait_listening(port)
        quiet.stop()
        assert "level=info" not in quiet.log
        assert "level=debug" not in quiet.log
    assert run(program, "--config.file", config, "--log.level", "verbose").returncode == 2


@pytest.mark.parametrize(
    ("program", "config", "warning"),
    [
        ("exporter", {}, "warning: the configuration reads nothing"),
        ("exporter", {"redis": [{"name": "main", "url": "redis://127.0.0.1:1/0"}]}, "warning: the configuration reads"),
        ("receiver", {}, "warning: no routes and no recovery plans"),
    ],
)
def test_a_configuration_that_can_do_nothing_is_a_warning(
    program: str, config: dict, warning: str, tmp_path: Path
) -> None:
    if program == "receiver":
        path = write_config(tmp_path, **config)
    else:
        path = tmp_path / "exporter.yml"
        path.write_text(json.dumps(config))
    done = run(program, "--config.file", str(path), "--check-config")
    assert done.returncode == 0
    (line,) = done.stderr.splitlines()  # one line saying why
    assert line.startswith(f"{path}: {warning}")
    assert "configuration is valid" in done.stdout


def test_a_configuration_that_does_something_has_no_warning(exporter_config: Path, tmp_path: Path) -> None:
    assert run("exporter", "--config.file", str(exporter_config), "--check-config").stderr == ""
    routed = write_config(
        tmp_path, notifiers={"slack": [{"name": "x", "webhook_url": "http://127.0.0.1:1/x"}]},
        routes=[{"match": {}, "notify": ["slack/x"]}],
    )  # fmt: skip
    assert run("receiver", "--config.file", str(routed), "--check-config").stderr == ""
