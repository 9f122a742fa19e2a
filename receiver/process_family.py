"""``process_*`` series for a receiver run as several processes: its processes and their parent together.

prometheus-client's process collector describes the one process that serves the scrape, which with
``--processes`` is whichever the kernel picked, and its multiprocess mode leaves these series out. What
an operator watches is the receiver's CPU, memory and open files, so each process reports those of the
whole family instead: the parent (which serves nothing) and every process it started, from ``/proc``.
Same names and meanings as prometheus-client's, summed; the start time is the parent's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PROC = Path("/proc")


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name, or None once the process is gone."""
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _boot_time() -> float:
    for line in (PROC / "stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


class FamilyCollector(Collector):
    """The totals of ``parent`` and its children: CPU (with children it has reaped), resident memory, open
    file descriptors; the parent's start time."""

    def __init__(self, parent: int) -> None:
        self.parent = parent
        self._ticks = os.sysconf("SC_CLK_TCK")
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._boot = _boot_time()

    def _children(self) -> list[int]:
        found = []
        for stat in PROC.glob("[0-9]*/stat"):
            fields = _stat(int(stat.parent.name))
            if fields is not None and fields[1] == str(self.parent):
                found.append(int(stat.parent.name))
        return found

    def collect(self) -> Iterator[Metric]:
        parent = _stat(self.parent)
        if parent is None:  # the parent is gone, and this process about to stop
            return
        family = [(self.parent, parent)] + [(pid, s) for pid in self._children() if (s := _stat(pid)) is not None]
        # utime, stime (fields 14-15 of stat); the parent's cutime and cstime hold the processes it reaped.
        cpu = sum(int(s[11]) + int(s[12]) for _, s in family) + int(parent[13]) + int(parent[14])
        fds = 0
        for pid, _ in family:
            try:
                fds += len(os.listdir(PROC / str(pid) / "fd"))
            except OSError:  # gone meanwhile
                continue
        yield CounterMetricFamily(
            "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", value=cpu / self._ticks
        )
        yield GaugeMetricFamily(
            "process_resident_memory_bytes", "Resident memory size in bytes.",
            value=sum(int(s[21]) for _, s in family) * self._page,
        )  # fmt: skip
        yield GaugeMetricFamily("process_open_fds", "Number of open file descriptors.", value=fds)
        yield GaugeMetricFamily(
            "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
            value=self._boot + int(parent[19]) / self._ticks,
        )  # fmt: skip
