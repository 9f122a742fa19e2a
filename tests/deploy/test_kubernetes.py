"""deploy/kubernetes/: core objects validated offline against the Kubernetes schemas (kubernetes-validate);
ServiceMonitor and PrometheusRule checked against prometheus-operator's documented API (monitoring.coreos.com/v1)."""

from __future__ import annotations

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


def objects() -> list[dict[str, Any]]:
    return [doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects() if obj["kind"] == kind]


def test_the_manifests_hold_what_a_deployment_needs() -> None:
    kinds = sorted(obj["kind"] for obj in objects())
    assert kinds == ["ConfigMap", "Deployment", "PrometheusRule", "Secret", "Service", "ServiceMonitor"]


@pytest.mark.parametrize("obj", [o for o in objects() if o["kind"] not in OPERATOR_KINDS], ids=lambda o: o["kind"])
def test_core_objects_validate_against_the_kubernetes_schema(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_deployment_mounts_config_and_secrets_where_the_program_reads_them() -> None:
    (deployment,) = by_kind("Deployment")
    (config_map,) = by_kind("ConfigMap")
    (secret,) = by_kind("Secret")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_path = Path(args[args.index("--config.file") + 1])
    assert mounts[next(n for n, v in volumes.items() if "configMap" in v)] == str(config_path.parent)
    assert config_path.name in config_map["data"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert mounts[next(n for n, v in volumes.items() if "secret" in v)] == env["CREDENTIALS_DIRECTORY"]
    assert volumes["secrets"]["secret"]["secretName"] == secret["metadata"]["name"]
    # The ConfigMap is the example config, with only the Redis address changed.
    example = (REPO / "deploy" / "exporter.example.yml").read_text()
    assert config_map["data"][config_path.name] == example.replace("redis://127.0.0.1:6379/0", "redis://redis:6379/0")
    # Every secret file the config reads is in the Secret.
    assert "${CREDENTIALS_DIRECTORY}/postgres-dsn" in example
    assert set(secret["stringData"]) == {"postgres-dsn"}
    port = container["ports"][0]
    assert (port["name"], port["containerPort"]) == ("metrics", 9817)
    assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"


def test_service_monitor_follows_the_operator_api_and_selects_the_service() -> None:
    (service,) = by_kind("Service")
    (monitor,) = by_kind("ServiceMonitor")
    (deployment,) = by_kind("Deployment")
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
