import yaml
from opsloop.render.alerts import alert_groups
from opsloop.render.output import render_all
from opsloop.render.prometheusrule import prometheus_rule
from opsloop.render.records import record_groups
from opsloop.render.thresholds import load_thresholds


def test_prometheus_rule_holds_every_group_unchanged() -> None:
    files = render_all(load_thresholds())
    alerts, records = files["rules/opsloop-alerts.yml"], files["rules/opsloop-records.yml"]
    obj = yaml.safe_load(prometheus_rule([alerts, records], namespace="monitoring"))
    assert obj["apiVersion"] == "monitoring.coreos.com/v1"
    assert obj["kind"] == "PrometheusRule"
    assert obj["metadata"] == {
        "name": "opsloop",
        "namespace": "monitoring",
        "labels": {"app.kubernetes.io/name": "opsloop"},
    }
    groups = obj["spec"]["groups"]
    assert groups == yaml.safe_load(alerts)["groups"] + yaml.safe_load(records)["groups"]
    t = load_thresholds()
    assert [g["name"] for g in groups] == [g.name for g in alert_groups(t)] + [g.name for g in record_groups(t)]


def test_namespace_is_optional() -> None:
    obj = yaml.safe_load(prometheus_rule(["groups: []\n"]))
    assert "namespace" not in obj["metadata"]
    assert obj["spec"] == {"groups": []}
