"""The example deployment files: checked by the real tools where they exist here, cross-checked otherwise.

Prometheus and Alertmanager configs go through promtool and amtool (and a real Alertmanager delivers a
webhook with the configured bearer token); systemd units through systemd-analyze when it is installed;
docker-compose.yml, the Dockerfile and the Grafana provisioning files are read and every path, secret,
volume, service and port they name is checked against the repository and the other files.
"""

from __future__ import annotations

import asyncio
import configparser
import json
import posixpath
import re
import shutil
import subprocess
import sys
import tomllib
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from opsloop.testsupport.servers import AlertmanagerServer, free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
UNITS = {"opsloop-exporter": 9817, "opsloop-receiver": 9818}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def compose() -> dict[str, Any]:
    return load(DEPLOY / "docker-compose.yml")


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source for a compose service's short-syntax volumes."""
    return {entry.split(":")[1]: entry.split(":")[0] for entry in service.get("volumes", [])}


def repo_path(source: str) -> Path:
    """A compose bind-mount source (relative to deploy/) as an absolute path inside the repository."""
    path = (DEPLOY / source).resolve()
    assert path.is_relative_to(REPO), f"{source} leaves the repository"
    return path


# --- Prometheus ---------------------------------------------------------------------------------


def test_prometheus_config_passes_promtool_with_the_shipped_rules(tmp_path: Path) -> None:
    config = load(DEPLOY / "prometheus.yml")
    shutil.copy(DEPLOY / "prometheus.yml", tmp_path / "prometheus.yml")
    (tmp_path / "rules").mkdir()
    for rule_file in config["rule_files"]:
        shutil.copy(REPO / rule_file, tmp_path / rule_file)

    done = run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")])

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {tmp_path / 'prometheus.yml'} is valid prometheus config file syntax" in done.stdout
    assert "SUCCESS: 2 rule files found" in done.stdout
    for rule_file in config["rule_files"]:
        assert re.search(rf"Checking {re.escape(str(tmp_path / rule_file))}\n\s+SUCCESS: \d+ rules found", done.stdout)


def test_prometheus_scrapes_exporter_and_receiver_and_alerts_to_alertmanager() -> None:
    config = load(DEPLOY / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["opsloop"]["static_configs"] == [{"targets": ["127.0.0.1:9817"]}]
    assert jobs["opsloop-receiver"]["static_configs"] == [{"targets": ["127.0.0.1:9818"]}]
    assert jobs["opsloop-receiver"]["metrics_path"] == "/metrics"
    assert config["rule_files"] == ["rules/opsloop-alerts.yml", "rules/opsloop-records.yml"]
    assert config["alerting"]["alertmanagers"] == [{"static_configs": [{"targets": ["127.0.0.1:9093"]}]}]


# --- Alertmanager -------------------------------------------------------------------------------


def alertmanager_config(token_file: Path) -> dict[str, Any]:
    """deploy/alertmanager.yml with its credentials file moved to one that exists."""
    config = load(DEPLOY / "alertmanager.yml")
    config["receivers"][0]["webhook_configs"][0]["http_config"]["authorization"]["credentials_file"] = str(token_file)
    return config


def test_alertmanager_config_passes_amtool(tmp_path: Path) -> None:
    token = tmp_path / "opsloop-token"
    token.write_text("s3cret\n")
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(alertmanager_config(token)))

    done = run(["amtool", "check-config", str(tmp_path / "alertmanager.yml")])

    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    assert " - 2 receivers" in done.stdout
    assert " - 1 inhibit rules" in done.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ({"alertname": "OpsloopReceiverDown", "severity": "critical"}, "opsloop-watchers"),
        ({"alertname": "OpsloopReceiverGuardTripped", "guard": "circuit_breaker"}, "opsloop-watchers"),
        ({"alertname": "OpsloopExporterDown", "severity": "critical"}, "opsloop"),
        ({"alertname": "OpsloopReceiver"}, "opsloop"),
        ({"alertname": "DLQEntriesIncreasing", "dlq": "dlq:emails"}, "opsloop"),
    ],
)
def test_receiver_alerts_go_to_alertmanager_email_not_to_the_receiver(
    tmp_path: Path, labels: dict[str, str], receiver: str
) -> None:
    """amtool routes the receiver's own alerts to a native email receiver, everything else to opsloop."""
    token = tmp_path / "opsloop-token"
    token.write_text("s3cret\n")
    config = alertmanager_config(token)
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config))
    args = [f"{name}={value}" for name, value in labels.items()]
    done = run(["amtool", "config", "routes", "test", f"--config.file={tmp_path / 'alertmanager.yml'}", *args])
    assert done.stdout.strip() == receiver, done.stdout + done.stderr
    watchers = next(r for r in config["receivers"] if r["name"] == "opsloop-watchers")
    assert set(watchers) == {"name", "email_configs"}


def test_alertmanager_webhook_targets_the_receiver_with_bearer_auth() -> None:
    config = load(DEPLOY / "alertmanager.yml")
    webhook = config["receivers"][0]["webhook_configs"][0]
    assert config["route"]["receiver"] == config["receivers"][0]["name"]
    assert webhook["url"] == "http://127.0.0.1:9818/alerts"
    assert webhook["send_resolved"] is True
    assert webhook["http_config"]["authorization"]["type"] == "Bearer"
    assert webhook["http_config"]["authorization"]["credentials_file"] == "/run/secrets/opsloop-token"
    route = config["route"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == ("10s", "1m", "4h")


async def test_real_alertmanager_delivers_firing_and_resolved_with_the_token(tmp_path: Path) -> None:
    received: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    async def alerts(request: web.Request) -> web.Response:
        await received.put((request.headers.get("Authorization", ""), await request.json()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/alerts", alerts)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()

    token = tmp_path / "opsloop-token"
    token.write_text("s3cret\n")
    config = alertmanager_config(token)
    config["receivers"][0]["webhook_configs"][0]["url"] = f"http://127.0.0.1:{port}/alerts"
    config["route"].update(group_wait="0s", group_interval="1s")  # timing only: the test has no minute to spare
    server = AlertmanagerServer(config, workdir=tmp_path / "am")
    try:
        await asyncio.to_thread(server.start)
        now = datetime.now(UTC)
        alert = {"labels": {"alertname": "DLQEntriesIncreasing", "dlq": "dlq:emails", "severity": "warning"}}
        await asyncio.to_thread(post_alerts, server.url, [{**alert, "startsAt": now.isoformat()}])
        auth, firing = await asyncio.wait_for(received.get(), 15)
        assert auth == "Bearer s3cret"
        assert firing["status"] == "firing"
        assert firing["alerts"][0]["labels"]["dlq"] == "dlq:emails"

        ended = {**alert, "startsAt": now.isoformat(), "endsAt": (now + timedelta(seconds=1)).isoformat()}
        await asyncio.to_thread(post_alerts, server.url, [ended])
        auth, resolved = await asyncio.wait_for(received.get(), 15)
        assert auth == "Bearer s3cret"
        assert resolved["status"] == "resolved"
        assert resolved["alerts"][0]["labels"]["alertname"] == "DLQEntriesIncreasing"
    finally:
        await asyncio.to_thread(server.cleanup)
        await runner.cleanup()


def post_alerts(alertmanager_url: str, alerts: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        f"{alertmanager_url}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


# --- systemd ------------------------------------------------------------------------------------


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_systemd_unit_is_hardened_and_verifies(unit: str, tmp_path: Path) -> None:
    path = DEPLOY / "systemd" / f"{unit}.service"
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(path.read_text())
    service = parser["Service"]
    argv = service["ExecStart"].split()
    assert Path(argv[0]).name == unit
    assert unit in SCRIPTS
    assert argv[argv.index("--config.file") + 1].startswith("/etc/opsloop/")
    assert argv[argv.index("--web.listen-address") + 1] == f"127.0.0.1:{UNITS[unit]}"
    for key, value in {
        "Restart": "on-failure",
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service[key] == value, key
    assert re.fullmatch(r"[a-z-]+:/etc/opsloop/secrets/[a-z-]+", service["LoadCredential"])
    assert parser["Unit"]["Description"]
    assert parser["Install"]["WantedBy"] == "multi-user.target"

    if shutil.which("systemd-analyze"):
        # verify insists that ExecStart is executable here: point it at this environment's console script.
        script = Path(sys.executable).with_name(unit)
        assert script.exists(), f"install the project so {script} exists"
        copy = tmp_path / path.name
        copy.write_text(path.read_text().replace(argv[0], str(script)))
        done = run(["systemd-analyze", "verify", str(copy)])
        assert (done.returncode, done.stderr) == (0, ""), done.stderr


# --- Dockerfile ---------------------------------------------------------------------------------


def dockerfile_stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined), in order."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if match := re.fullmatch(r"FROM (\S+) AS (\S+)", line.strip()):
            current = stages.setdefault(match.group(2), [line.strip()])
        else:
            current.append(line.strip())
    return stages


def test_dockerfile_builds_both_commands_as_non_root() -> None:
    stages = dockerfile_stages()
    assert stages["build"][0] == "FROM python:3.11-slim AS build"
    assert stages["runtime"][0] == "FROM python:3.11-slim AS runtime"
    users = [line.split()[1] for line in stages["runtime"] if line.startswith("USER ")]
    assert users
    assert users[-1] not in ("root", "0")
    for target, port in (("exporter", 9817), ("receiver", 9818)):
        assert stages[target][0] == f"FROM runtime AS {target}"
        (entrypoint,) = [json.loads(line.split(maxsplit=1)[1]) for line in stages[target] if "ENTRYPOINT" in line]
        assert entrypoint == [f"opsloop-{target}"]
        assert entrypoint[0] in SCRIPTS
        assert f"EXPOSE {port}" in stages[target]
    copied = [line.split()[1:-1] for line in stages["build"] if line.startswith("COPY ")]
    for sources in copied:
        for source in sources:
            assert (REPO / source).exists(), source
    packages = {Path(source).name for sources in copied for source in sources if (REPO / source).is_dir()}
    assert {"opsloop", "exporter", "receiver", "render"} <= packages


# --- docker-compose.yml -------------------------------------------------------------------------


def test_compose_has_every_part_of_the_stack() -> None:
    services = compose()["services"]
    assert {"redis", "postgres", "prometheus", "alertmanager", "grafana", "exporter", "receiver"} <= set(services)
    for name in ("exporter", "receiver"):
        build = services[name]["build"]
        assert (DEPLOY / build["context"]).resolve() == REPO
        assert (REPO / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
        assert build["target"] in dockerfile_stages()


def test_compose_references_resolve() -> None:
    spec = compose()
    services = spec["services"]
    declared_volumes, declared_secrets = set(spec["volumes"]), set(spec["secrets"])
    used_volumes, used_secrets = set(), set()
    for name, service in services.items():
        if mode := service.get("network_mode"):
            anchor = mode.removeprefix("service:")
            assert anchor in services, name
            assert "network_mode" not in services[anchor], f"{name}: {anchor} must own its network"
            assert "ports" not in service, f"{name} shares {anchor}'s network: publish ports there"
        depends = service.get("depends_on", [])
        assert set(depends) <= set(services), name
        used_volumes |= {source for source in mounts(service).values() if not source.startswith(".")}
        used_secrets |= set(service.get("secrets", []))
        for env_file in service.get("env_file", []):
            assert env_file.startswith("secrets/"), f"{name}: keep env files with secrets out of git"
    assert used_volumes == declared_volumes
    assert used_secrets == declared_secrets
    for secret in spec["secrets"].values():
        assert secret["file"].startswith("secrets/")
    assert "secrets/" in (DEPLOY / ".gitignore").read_text().splitlines()


BIND_MOUNTS = [
    (name, source)
    for name, service in compose()["services"].items()
    for source in mounts(service).values()
    if source.startswith(".")
]


@pytest.mark.parametrize(("service", "source"), BIND_MOUNTS, ids=[f"{n}:{s}" for n, s in BIND_MOUNTS])
def test_compose_bind_mount_exists_in_the_repository(service: str, source: str) -> None:
    assert repo_path(source).exists(), f"{service} mounts {source}, which does not exist"


def test_compose_mounts_land_where_the_configs_look() -> None:
    services = compose()["services"]
    prometheus = mounts(services["prometheus"])
    assert prometheus["/etc/prometheus/prometheus.yml"] == "./prometheus.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    for rule_file in load(DEPLOY / "prometheus.yml")["rule_files"]:
        target = posixpath.join("/etc/prometheus", rule_file)
        folder = posixpath.dirname(target)
        assert (repo_path(prometheus[folder]) / posixpath.basename(target)).is_file(), rule_file

    alertmanager = services["alertmanager"]
    assert mounts(alertmanager)["/etc/alertmanager/alertmanager.yml"] == "./alertmanager.yml"
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in alertmanager["command"]
    credentials = load(DEPLOY / "alertmanager.yml")["receivers"][0]["webhook_configs"][0]["http_config"]
    secret = credentials["authorization"]["credentials_file"].removeprefix("/run/secrets/")
    assert secret in alertmanager["secrets"]
    assert secret in services["receiver"]["secrets"]

    grafana = mounts(services["grafana"])
    assert repo_path(grafana["/etc/grafana/provisioning"]) == DEPLOY / "grafana" / "provisioning"
    provider = load(DEPLOY / "grafana/provisioning/dashboards/opsloop.yml")["providers"][0]
    dashboards = repo_path(grafana[provider["options"]["path"]])
    assert dashboards == REPO / "dashboards"
    assert sorted(dashboards.glob("*.json")), "the provider's folder holds the rendered dashboards"

    assert mounts(services["exporter"])["/etc/opsloop/exporter.yml"] == "./exporter.example.yml"
    assert mounts(services["receiver"])["/etc/opsloop/receiver.yml"] == "./receiver.example.yml"
    published = {port.rsplit(":", 1)[1] for port in services["pod"]["ports"]}
    assert published == {"3000", "9090", "9093"}


# --- Grafana provisioning -----------------------------------------------------------------------


def test_grafana_datasource_has_the_stable_uid_the_dashboards_expect() -> None:
    provisioning = load(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")
    assert provisioning["apiVersion"] == 1
    (source,) = provisioning["datasources"]
    assert {key: source[key] for key in ("name", "type", "uid", "access", "url")} == {
        "name": "Prometheus",
        "type": "prometheus",
        "uid": "prometheus",
        "access": "proxy",
        "url": "http://127.0.0.1:9090",
    }
    assert source["jsonData"]["timeInterval"] == load(DEPLOY / "prometheus.yml")["global"]["scrape_interval"]
    for dashboard in sorted((REPO / "dashboards").glob("*.json")):
        variables = {v["name"]: v for v in json.loads(dashboard.read_text())["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource", dashboard.name
        assert variables["datasource"]["query"] == source["type"], dashboard.name


def test_grafana_dashboard_provider_reads_the_mounted_folder() -> None:
    provisioning = load(DEPLOY / "grafana/provisioning/dashboards/opsloop.yml")
    assert provisioning["apiVersion"] == 1
    (provider,) = provisioning["providers"]
    assert provider["name"] == "opsloop"
    assert provider["type"] == "file"
    assert provider["orgId"] == 1
    assert provider["folder"] == "opsloop"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/opsloop"
    assert provider["disableDeletion"] is True
    assert provider["allowUiUpdates"] is False
