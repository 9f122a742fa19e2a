"""deploy/kubernetes/ (exporter and receiver): core objects validated offline against the Kubernetes
schemas (kubernetes-validate); ServiceMonitor and PrometheusRule checked against prometheus-operator's
documented API (monitoring.coreos.com/v1)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from opsloop.render.output import ALERTS_FILE, RECORDS_FILE
from opsloop.render.prometheusrule import prometheus_rule

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
APP = "app.kubernetes.io/name"
PROGRAMS = ("exporter", "receiver")
ADDRESSES = {
    "exporter": {"redis://127.0.0.1:6379/0": "redis://redis:6379/0"},
    "receiver": {"redis://127.0.0.1:6379/0": "redis://redis:6379/0",
                 "http://127.0.0.1:9090": "http://prometheus-operated:9090"},
}  # fmt: skip
PORTS = {"exporter": ("metrics", 9817), "receiver": ("http", 9818)}


def objects() -> list[dict[str, Any]]:
    return [doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(kind: str, program: str | None = None) -> list[dict[str, Any]]:
    """Objects of ``kind``, only those of ``program`` (its ``app.kubernetes.io/name``) when given."""
    return [
        obj for obj in objects()
        if obj["kind"] == kind and (program is None or obj["metadata"]["labels"][APP] == f"opsloop-{program}")
    ]  # fmt: skip


def credential_files(value: object) -> list[str]:
    """The names of the ``${CREDENTIALS_DIRECTORY}/<name>`` files a parsed config refers to."""
    if isinstance(value, dict):
        return [name for item in value.values() for name in credential_files(item)]
    if isinstance(value, list):
        return [name for item in value for name in credential_files(item)]
    return re.findall(r"\$\{CREDENTIALS_DIRECTORY\}/([\w-]+)", value) if isinstance(value, str) else []


def test_the_manifests_hold_what_a_deployment_needs() -> None:
    kinds = sorted(obj["kind"] for obj in objects())
    assert kinds == ["ConfigMap", "ConfigMap", "Deployment", "Deployment", "PersistentVolumeClaim", "PrometheusRule",
                     "Secret", "Secret", "Service", "Service", "ServiceMonitor"]  # fmt: skip


@pytest.mark.parametrize("obj", [o for o in objects() if o["kind"] not in OPERATOR_KINDS], ids=lambda o: o["kind"])
def test_core_objects_validate_against_the_kubernetes_schema(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("program", PROGRAMS)
def test_deployment_mounts_config_and_secrets_where_the_program_reads_them(program: str, tmp_path: Path) -> None:
    (deployment,) = by_kind("Deployment", program)
    (config_map,) = by_kind("ConfigMap", program)
    (secret,) = by_kind("Secret", program)
    (service,) = by_kind("Service", program)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_path = Path(args[args.index("--config.file") + 1])
    assert mounts[next(n for n, v in volumes.items() if "configMap" in v)] == str(config_path.parent)
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert mounts[next(n for n, v in volumes.items() if "secret" in v)] == env["CREDENTIALS_DIRECTORY"]
    assert volumes["secrets"]["secret"]["secretName"] == secret["metadata"]["name"]
    # The ConfigMap is the example config, with only the addresses of other Services changed.
    example = (REPO / "deploy" / f"{program}.example.yml").read_text()
    for local, in_cluster in ADDRESSES[program].items():
        assert local in example
        example = example.replace(local, in_cluster)
    assert config_map["data"][config_path.name] == example
    # Every secret file the config reads (comments aside) is in the Secret, and nothing else.
    assert set(secret["stringData"]) == set(credential_files(yaml.safe_load(example)))
    # Secret files are 0400 and owned by root: a non-root pod reads them through its fsGroup.
    security = pod["securityContext"]
    if volumes["secrets"]["secret"]["defaultMode"] & 0o044 == 0:
        assert security["runAsUser"] != 0
        assert security["fsGroup"] == security["runAsGroup"]
    name, port = PORTS[program]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {name: port}
    assert args[args.index("--web.listen-address") + 1] == f":{port}"  # reachable through the Service
    assert container["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": name}
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [name]
    # The program accepts the ConfigMap with the Secret's files as its credentials.
    (tmp_path / "credentials").mkdir()
    for key, value in secret["stringData"].items():
        (tmp_path / "credentials" / key).write_text(value)
    (tmp_path / config_path.name).write_text(config_map["data"][config_path.name])
    command = [sys.executable, "-m", f"opsloop.{program}", "--check-config", "--config.file"]
    checked = subprocess.run(
        [*command, str(tmp_path / config_path.name)],
        env={**os.environ, "CREDENTIALS_DIRECTORY": str(tmp_path / "credentials")},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "warning" not in checked.stderr


def test_receiver_store_is_on_the_claimed_volume_with_one_writer() -> None:
    (deployment,) = by_kind("Deployment", "receiver")
    (config_map,) = by_kind("ConfigMap", "receiver")
    (claim,) = by_kind("PersistentVolumeClaim", "receiver")
    store = yaml.safe_load(config_map["data"]["receiver.yml"])["store"]
    assert store.startswith("sqlite:///")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volume = next(v for v in pod["volumes"] if v["name"] == mounts[str(Path(store.removeprefix("sqlite://")).parent)])
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "/tmp" in mounts  # SQLite's temporary files
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # never two SQLite writers at once


def test_service_monitor_follows_the_operator_api_and_selects_the_service() -> None:
    (service,) = by_kind("Service", "exporter")
    (monitor,) = by_kind("ServiceMonitor")
    (deployment,) = by_kind("Deployment", "exporter")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    spec = monitor["spec"]
    assert set(spec) <= {"selector", "endpoints", "jobLabel", "namespaceSelector", "targetLabels", "podTargetLabels"}
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= {"port", "path", "scheme", "interval", "scrapeTimeout", "tlsConfig", "basicAuth"}
        assert endpoint["port"] in port_names
    # Without jobLabel the operator names the job after the Service: the job the rules select.
    thresholds = yaml.safe_load((REPO / "rules" / "thresholds.yaml").read_text())
    assert "jobLabel" not in spec
    assert thresholds["selector"] == f'job="{service["metadata"]["name"]}"'


def test_prometheus_rule_is_the_rendered_rules() -> None:
    (rule,) = by_kind("PrometheusRule")
    files = [(REPO / name).read_text() for name in (ALERTS_FILE, RECORDS_FILE)]
    assert (K8S / "prometheusrule.yaml").read_text() == prometheus_rule(files)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    for group in rule["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit", "partial_response_strategy"}
        assert group["name"]
        assert group["rules"]
        for item in group["rules"]:
            assert set(item) <= {"alert", "record", "expr", "for", "labels", "annotations", "keep_firing_for"}
            assert ("alert" in item) != ("record" in item)
            assert item["expr"]
