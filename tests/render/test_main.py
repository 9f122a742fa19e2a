import json
from pathlib import Path

import pytest
import yaml
from opsloop.render.__main__ import main as render_main


def test_renders_with_a_partial_override(tmp_path: Path) -> None:
    override = tmp_path / "mine.yaml"
    override.write_text("queues:\n  backlog:\n    warning: {threshold: 20}\n")
    assert main(["--thresholds", str(override), "--out", str(tmp_path / "out"), "--log.level", "error"]) == 0
    alerts = yaml.safe_load((tmp_path / "out/rules/opsloop-alerts.yml").read_text())
    backlog = [r for g in alerts["groups"] for r in g["rules"] if r.get("alert") == "QueueBacklogHigh"]
    assert [r["expr"] for r in backlog] == [
        'opsloop_queue_length{job="opsloop"} > 20',
        'opsloop_queue_length{job="opsloop"} > 500',
    ]
    queues = json.loads((tmp_path / "out/dashboards/opsloop-queues.json").read_text())
    length = next(p for p in queues["panels"] if p["title"] == "Queue length")
    assert [s["value"] for s in length["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [None, 20, 500]


def main(argv: list[str]) -> int:
    """opsloop-render with JSON logs, which the tests read back."""
    return render_main([*argv, "--log.format", "json"])


def _logged(capsys: pytest.CaptureFixture[str]) -> list[dict[str, str]]:
    """The JSON log lines main() wrote to stderr."""
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


def test_check_reports_stale_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["--out", str(out)]) == 0
    assert sorted(e["file"] for e in _logged(capsys)) == [
        str(out / "dashboards/opsloop-overview.json"),
        str(out / "dashboards/opsloop-queues.json"),
        str(out / "rules/opsloop-alerts.yml"),
        str(out / "rules/opsloop-records.yml"),
    ]
    assert main(["--out", str(out), "--check"]) == 0
    (out / "rules/opsloop-records.yml").write_text("groups: []\n")
    assert main(["--out", str(out), "--check"]) == 1
    assert [(e["level"], e["file"]) for e in _logged(capsys)] == [("error", "rules/opsloop-records.yml")]


def test_writes_a_prometheus_rule(tmp_path: Path) -> None:
    target = tmp_path / "k8s/opsloop-rules.yaml"
    argv = ["--out", str(tmp_path), "--prometheus-rule", str(target), "--namespace", "mon", "--log.level", "error"]
    assert main(argv) == 0
    obj = yaml.safe_load(target.read_text())
    assert (obj["kind"], obj["metadata"]["namespace"]) == ("PrometheusRule", "mon")
    assert "opsloop-queues" in [g["name"] for g in obj["spec"]["groups"]]


def test_invalid_thresholds_exit_2_with_each_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("cache:\n  memory:\n    warning: {threshold: 0.95}\n  slow: {for: later}\n")
    assert main(["--thresholds", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert sorted(e["problem"] for e in _logged(capsys)) == [
        "cache.memory: warning threshold 0.95 must be below critical threshold 0.9",
        "cache.slow.for: expected a duration such as 30s, 5m or 1h, got 'later'",
    ]
    assert not (tmp_path / "out").exists()
