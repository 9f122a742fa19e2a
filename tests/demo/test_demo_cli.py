"""The README's demo command: the loop completes on screen and everything is cleaned up."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from opsloop.demo.__main__ import is_scenario_alert

ROOT = Path(__file__).resolve().parents[2]


def _run_demo(scenario: str) -> str:
    """The demo's screen output for one scenario run to the end of its loop; it must exit 0."""
    done = subprocess.run(
        [sys.executable, "-m", "opsloop.demo", "--scenario", scenario, "--exit-after-loop"],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _temporary_data(out: str) -> str:
    """The demo's temporary folder, as it prints it; no process may still run from it."""
    (workdir,) = [
        line.split("temporary data: ")[1].split(" ")[0] for line in out.splitlines() if "temporary data: " in line
    ]
    leftover = subprocess.run(["pgrep", "-f", workdir], capture_output=True, text=True, check=False)
    assert leftover.stdout.strip() == "", f"processes left running: {leftover.stdout}"
    return workdir


def test_dlq_storm_demo_completes_the_loop_and_cleans_up():
    out = _run_demo("dlq-storm")
    assert "prometheus: http://127.0.0.1:" in out
    assert re.search(r"console: http://127\.0\.0\.1:\d+/ui/ \(sign in with any name and the admin token \S+\)", out)
    assert "Slack  <- FIRING: DLQEntriesIncreasing dlq=dlq:emails" in out
    assert "E-mail <- [FIRING] DLQEntriesIncreasing dlq=dlq:emails" in out
    assert "Action -> plan requeue-dlq stage 1: dlq_requeue ok: moved 25 items dlq:emails -> queue:emails" in out
    assert "Slack  <- RESOLVED: DLQEntriesIncreasing" in out
    assert "loop complete: DLQEntriesIncreasing fired, the receiver handled it, it resolved" in out
    assert not Path(_temporary_data(out)).exists()


@pytest.mark.slow
def test_rq_failures_demo_requeues_with_rq_semantics_and_a_real_worker_completes_them():
    out = _run_demo("rq-failures")
    assert "Slack  <- FIRING: DLQEntriesIncreasing dlq=rq:failed:reports framework=rq" in out
    assert (
        "Action -> plan requeue-rq stage 1: requeue_failed ok: requeued 25 rq jobs rq:failed:reports -> the job's queue"
        in out
    )
    assert "RQ reports 25 of 25 report jobs finished after the requeue (0 still failed)" in out
    assert "loop complete: DLQEntriesIncreasing fired, the receiver handled it, it resolved" in out
    _temporary_data(out)


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid``, from /proc (children of children included)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_two_sigints_stop_every_process_the_demo_started(tmp_path: Path) -> None:
    out_path = tmp_path / "demo.out"
    with out_path.open("w") as out:
        demo = subprocess.Popen([sys.executable, "-m", "opsloop.demo", "--scenario", "none"], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while "temporary data" not in out_path.read_text():
            assert demo.poll() is None, out_path.read_text()
            assert time.monotonic() < deadline, out_path.read_text()
            time.sleep(0.2)
        started = _descendants(demo.pid)
        assert len(started) >= 5, started  # redis, postgres (under runuser), exporter, receiver, AM, Prometheus
        demo.send_signal(signal.SIGINT)
        while "stopping every process" not in out_path.read_text():  # the cleanup has begun (it takes ~1 s)
            assert demo.poll() is None, out_path.read_text()
            assert time.monotonic() < deadline, out_path.read_text()
            time.sleep(0.01)
        demo.send_signal(signal.SIGINT)  # Ctrl-C twice: the second must not cut the cleanup short
        assert demo.wait(120) == 0, out_path.read_text()
    finally:
        if demo.poll() is None:
            demo.kill()
    text = out_path.read_text()
    assert "already stopping every process" in text
    assert "Traceback" not in text
    assert [pid for pid in started if _alive(pid)] == []
    assert not Path(_temporary_data(text)).exists()


def test_each_scenario_completes_only_on_its_own_alert() -> None:
    ours = {"labels": {"alertname": "QueueBacklogHigh", "queue": "emails", "redis": "main", "severity": "warning"}}
    other_queue = {"labels": {"alertname": "QueueBacklogHigh", "queue": "jobs:render", "redis": "main"}}
    assert is_scenario_alert("slow-consumer", ours)
    assert not is_scenario_alert("slow-consumer", other_queue)
    assert not is_scenario_alert("dlq-storm", ours)
    assert is_scenario_alert("dlq-storm", {"labels": {"alertname": "DLQEntriesIncreasing", "dlq": "dlq:emails"}})
    assert not is_scenario_alert("dlq-storm", {"labels": {"alertname": "DLQEntriesIncreasing", "dlq": "dlq:render"}})
    assert is_scenario_alert("redis-down", {"labels": {"alertname": "OpsloopSourceDown", "source": "redis/main"}})
    assert not is_scenario_alert("redis-down", {"labels": {"alertname": "OpsloopSourceDown", "source": "postgres"}})
