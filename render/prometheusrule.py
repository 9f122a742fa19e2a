"""Wrap rendered rule files in a Kubernetes ``PrometheusRule`` object for prometheus-operator."""

from __future__ import annotations

from collections.abc import Iterable

import yaml


def prometheus_rule(rule_files: Iterable[str], name: str = "opsloop", namespace: str | None = None) -> str:
    """One ``monitoring.coreos.com/v1`` PrometheusRule holding every group of ``rule_files``."""
    groups = [group for text in rule_files for group in yaml.safe_load(text)["groups"]]
    metadata: dict[str, object] = {"name": name, "labels": {"app.kubernetes.io/name": "opsloop"}}
    if namespace:
        metadata["namespace"] = namespace
    obj = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": metadata,
           "spec": {"groups": groups}}  # fmt: skip
    return yaml.safe_dump(obj, sort_keys=False, allow_unicode=True, width=1000)
