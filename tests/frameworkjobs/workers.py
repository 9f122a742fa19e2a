"""Real task-framework workers as child processes, each in its own process group so SIGKILL takes all.

Job modules (``rq_jobs``, ``dramatiq_jobs``, ...) live beside this file; workers find them on PYTHONPATH
and read the Redis URL from OPSLOOP_TEST_REDIS_URL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

JOBS_DIR = Path(__file__).parent
BIN = Path(sys.executable).parent


class Workers:
    def __init__(self, redis_url: str, logdir: Path) -> None:
        self.redis_url = redis_url
        self.logdir = logdir
        self.running: list[subprocess.Popen[bytes]] = []

    def _env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(JOBS_DIR), "OPSLOOP_TEST_REDIS_URL": self.redis_url}

    def start(self, tool: str, *args: str) -> subprocess.Popen[bytes]:
        """Start ``tool`` (an installed console script: rq, dramatiq, celery, arq) in its own session."""
        log = (self.logdir / f"{tool}-{len(self.running)}.log").open("wb")
        process = subprocess.Popen(
            [str(BIN / tool), *args], env=self._env(), cwd=JOBS_DIR, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.running.append(process)
        return process

    def burst(self, tool: str, *args: str, timeout: float = 120.0) -> None:
        """Run a worker that exits when the queue is empty; fail with its log if it does not.

        More than a minute: on a loaded machine an rq 3.0 worker was seen to log "done, quitting" and
        exit 60 s later, its pubsub thread listening with ``sleep_time=60`` as it stopped.
        """
        process = self.start(tool, *args)
        try:
            rc = process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(process)
            raise AssertionError(f"{tool} worker did not finish in {timeout}s: {self.log(process)}") from None
        assert rc == 0, f"{tool} worker exited {rc}: {self.log(process)}"

    def log(self, process: subprocess.Popen[bytes]) -> str:
        index = self.running.index(process)
        tool = Path(str(process.args[0])).name  # type: ignore[index]
        return (self.logdir / f"{tool}-{index}.log").read_text(errors="replace")[-4000:]

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and every process it forked, as a killed container or host would.

        RQ's work horse moves to a process group of its own, so the whole session is killed, not only
        the worker's group; no clean-up code of the framework runs.
        """
        for pid in [process.pid, *session_members(process.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(10)

    def close(self) -> None:
        """SIGKILL every worker started and whatever is left of their sessions (work horses)."""
        for process in self.running:
            self.kill(process)


def session_members(sid: int) -> list[int]:
    """Processes of the session ``sid`` (Linux /proc), whatever process group they moved to."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp session
            if int(fields[3]) == sid:
                members.append(int(stat.parent.name))
    return members


def wait_for(condition: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``condition`` every 0.1 s, bounded by ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
