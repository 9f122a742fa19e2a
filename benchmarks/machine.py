"""What the machine did during a measurement, read from /proc: CPU time by whom, time spent waiting for a
CPU, the disk's own flush latency; and the scheduling priority of the measured processes.

On a machine shared with other work these say whether a result was decided by the code or by the machine.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, all its threads, from /proc (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def family(parent: int) -> list[int]:
    """A process and its children: PostgreSQL's postmaster and its backends, a receiver run as processes."""
    pids = [parent]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[1] == str(parent):
                pids.append(int(stat.parent.name))
        except OSError:  # gone meanwhile
            continue
    return pids


def family_cpu_seconds(parent: int) -> float:
    """CPU time of a process and its children."""
    return sum(cpu_seconds(pid) for pid in family(parent))


def runqueue_wait_seconds(pid: int) -> float:
    """Time the process's threads spent ready to run but waiting for a CPU (``/proc/PID/task/*/schedstat``)."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, IndexError):  # a thread that ended meanwhile
            total += int(stat.read_text().split()[1])
    return total / 1e9


def _cpu_ticks() -> list[int]:
    """The machine's CPU time so far by kind (user, nice, system, idle, iowait, irq, softirq, steal), in
    clock ticks: the first line of /proc/stat."""
    return [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def machine_busy_seconds() -> float:
    """CPU time every core of the machine spent busy so far, whoever's work it was."""
    ticks = _cpu_ticks()
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


def children_cpu_seconds() -> float:
    """CPU time of this script's finished children: the wrk runs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def prioritise(pid: int, nice: int) -> None:
    """Give the scheduling group (Linux autogroup: one per session) of ``pid`` the nice value ``nice``.

    With autogroups, the scheduler shares CPU between sessions first and honours a process's own nice
    value only within its session: background work niced to 19 in sessions of its own still takes an
    equal share per session. Raising the measured sessions' group priority (root or CAP_SYS_NICE) lets
    such work yield to the measurement as its nice value asks.
    """
    if nice == 0:
        return
    try:
        Path(f"/proc/{pid}/autogroup").write_text(f"{nice}\n")
    except OSError as exc:
        print(f"cannot set the scheduling priority of PID {pid} ({exc}): measuring without it", file=sys.stderr)


class FlushSampler(threading.Thread):
    """Times a 4 KiB write and ``fdatasync`` every 10 ms in ``work`` until stopped: the disk's own flush
    latency meanwhile, so a commit tail can be told apart from a disk that was slow at that moment."""

    def __init__(self, work: Path) -> None:
        super().__init__(daemon=True)
        self.path = work / "flush-sample"
        self.samples: list[float] = []
        self.halt = threading.Event()

    def run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            while not self.halt.wait(0.01) and len(self.samples) < 100_000:
                os.pwrite(fd, b"x" * 4096, 0)
                started = time.perf_counter()
                os.fdatasync(fd)
                self.samples.append((time.perf_counter() - started) * 1000)
        finally:
            os.close(fd)
            self.path.unlink()

    def p99(self) -> float:
        self.halt.set()
        self.join()
        ordered = sorted(self.samples) or [0.0]
        return ordered[min(len(ordered) - 1, len(ordered) * 99 // 100)]


def steal_seconds() -> float:
    """CPU time the hypervisor took from this virtual machine's cores so far (``steal`` in /proc/stat)."""
    return _cpu_ticks()[7] / os.sysconf("SC_CLK_TCK")


class StallSampler:
    """A child process that asks to wake up every 5 ms, at real-time priority, until stopped, and reports
    the longest delay.

    A real-time (``SCHED_FIFO``) process runs as soon as it wakes, ahead of every ordinary process, so its
    delay is the time the machine itself ran nothing: the hypervisor pausing the virtual machine, or the
    kernel. A latency tail as long as the stall came from the machine, not the code. A process of its own,
    so no interpreter lock of the script's delays it. Without the right to real-time scheduling (root or
    CAP_SYS_NICE) it says so and measures anyway, which then counts waiting behind other processes too."""

    CHILD = """
import os, select, sys, time
try:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
except OSError as exc:
    print(f"stall sampler without real-time scheduling ({exc}): it counts waiting for a CPU", file=sys.stderr)
longest = 0.0
for _ in range(1_000_000):  # bounded: over an hour and a half of 5 ms naps
    asked = time.perf_counter()
    if select.select([sys.stdin], [], [], 0.005)[0]:
        break
    longest = max(longest, time.perf_counter() - asked - 0.005)
print(longest * 1000)
"""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", self.CHILD], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)  # fmt: skip

    def longest_ms(self) -> float:
        out, _ = self.proc.communicate("", timeout=10)
        return float(out)
