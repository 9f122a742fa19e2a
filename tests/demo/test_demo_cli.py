"""The README's demo command: the loop completes on screen and everything is cleaned up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_dlq_storm_demo_completes_the_loop_and_cleans_up():
    done = subprocess.run(
        [sys.executable, "-m", "opsloop.demo", "--scenario", "dlq-storm", "--exit-after-loop"],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "prometheus: http://127.0.0.1:" in out
    assert "Slack  <- FIRING: DLQEntriesIncreasing dlq=dlq:emails" in out
    assert "E-mail <- [FIRING] DLQEntriesIncreasing dlq=dlq:emails" in out
    assert "Action -> plan requeue-dlq stage 1: dlq_requeue ok: moved 25 items dlq:emails -> queue:emails" in out
    assert "Slack  <- RESOLVED: DLQEntriesIncreasing" in out
    assert "loop complete: DLQEntriesIncreasing fired, the receiver handled it, it resolved" in out
    (workdir,) = [
        line.split("temporary data: ")[1].split(" ")[0] for line in out.splitlines() if "temporary data" in line
    ]
    leftover = subprocess.run(["pgrep", "-f", workdir], capture_output=True, text=True, check=False)
    assert leftover.stdout.strip() == "", f"processes left running: {leftover.stdout}"
    assert not Path(workdir).exists()


@pytest.mark.slow
def test_rq_failures_demo_requeues_with_rq_semantics_and_a_real_worker_completes_them():
    done = subprocess.run(
        [sys.executable, "-m", "opsloop.demo", "--scenario", "rq-failures", "--exit-after-loop"],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Slack  <- FIRING: DLQEntriesIncreasing dlq=rq:failed:reports framework=rq" in out
    assert (
        "Action -> plan requeue-rq stage 1: requeue_failed ok: requeued 25 rq jobs rq:failed:reports -> the job's queue"
        in out
    )
    assert "RQ reports 25 of 25 report jobs finished after the requeue (0 still failed)" in out
    assert "loop complete: DLQEntriesIncreasing fired, the receiver handled it, it resolved" in out
    (workdir,) = [
        line.split("temporary data: ")[1].split(" ")[0] for line in out.splitlines() if "temporary data" in line
    ]
    leftover = subprocess.run(["pgrep", "-f", workdir], capture_output=True, text=True, check=False)
    assert leftover.stdout.strip() == "", f"processes left running: {leftover.stdout}"
