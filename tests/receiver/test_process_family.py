"""``FamilyCollector``: the ``process_*`` series of a parent and its children together, read from ``/proc``.

The family here is made for the test: a parent that reaps a child after it used CPU, then starts two
children that touch memory and open files on request. The oracles are what each process learns of
itself from the kernel through other calls (``times(2)``, ``getrusage`` of reaped children), the
kernel's ``VmRSS`` and what the test made the processes do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opsloop.receiver.process_family import FamilyCollector
from prometheus_client.process_collector import ProcessCollector

from tests.receiver.test_processes import kernel_rss

FAMILY = r"""
import json, os, resource, signal, sys, time

started = time.time()


def count_fds():  # open descriptors, found by asking the kernel about each possible one (not from /proc)
    found = 0
    for fd in range(min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 4096)):  # the lowest free is taken
        try:
            os.fstat(fd)
        except OSError:
            continue
        found += 1
    return found


def burn(seconds):  # user time, however busy the machine: a system call only every few milliseconds
    start = os.times().user
    while os.times().user - start < seconds:
        sum(range(100_000))


burner = os.fork()
if burner == 0:  # a child that uses CPU, then ends and is reaped
    burn(0.3)
    os._exit(0)
os.waitpid(burner, 0)
time.sleep(1.2)  # the children start well after the parent

ready_r, ready_w = os.pipe()
children = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        held = []
        signal.signal(signal.SIGUSR1, lambda *_: held.extend(os.open(os.devnull, os.O_RDONLY) for _ in range(25)))
        block = b"x" * (40 << 20)  # written, so resident
        if not children:  # the first child burns too, and has a ")" in its name, as a command may
            burn(0.2)
            with open("/proc/self/comm", "w") as comm:
                comm.write("job) (1")
        held.extend(os.open(os.devnull, os.O_RDONLY) for _ in range(3))
        fds = count_fds() - 1  # less the end of the pipe it closes once it reported
        t = os.times()
        report = {"pid": os.getpid(), "cpu": t.user + t.system, "fds": fds}
        os.write(ready_w, (json.dumps(report) + "\n").encode())
        os.close(ready_w)
        while True:
            time.sleep(60)
    children.append(pid)
os.close(ready_w)
with os.fdopen(ready_r) as ready:
    reports = [json.loads(line) for line in ready]
t = os.times()
print(json.dumps({"started": started, "cpu": t.user + t.system, "reaped": t.children_user + t.children_system,
                  "fds": count_fds(), "children": reports}), flush=True)
while True:
    time.sleep(60)
"""

TICK = 1 / os.sysconf("SC_CLK_TCK")


class Family:
    def __init__(self) -> None:
        self.launched = time.time()
        self.proc = subprocess.Popen([sys.executable, "-c", FAMILY], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.report: dict[str, Any] = json.loads(self.proc.stdout.readline())
        self.children: list[int] = [child["pid"] for child in self.report["children"]]

    @property
    def pids(self) -> list[int]:
        return [self.proc.pid, *self.children]

    def stop(self) -> None:
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        self.proc.wait(10)


@pytest.fixture(scope="module")
def family() -> Iterator[Family]:
    """One family for the tests that only read it (each takes 1.5 s to make)."""
    made = Family()
    yield made
    made.stop()


@pytest.fixture
def own_family() -> Iterator[Family]:
    """A family for a test that changes it."""
    made = Family()
    yield made
    made.stop()


def collect(parent: int) -> dict[str, float]:
    return {metric.name: metric.samples[0].value for metric in FamilyCollector(parent).collect()}


def test_cpu_counts_every_process_and_the_children_it_reaped(family: Family) -> None:
    expected = family.report["cpu"] + family.report["reaped"] + sum(c["cpu"] for c in family.report["children"])
    assert family.report["reaped"] >= 0.25  # the burner's 0.3 s, counted in ticks
    cpu = collect(family.proc.pid)["process_cpu_seconds"]
    # the same ticks the kernel counts; the processes only sleep once they reported, but may be
    # charged a tick for waking up
    # in whole ticks: the two sums add the same ticks in other orders (0.58 against 0.5800000000000001)
    assert round(expected / TICK) <= round(cpu / TICK) <= round(expected / TICK) + 3, (cpu, expected)


def test_resident_memory_is_the_sum_of_the_family(family: Family) -> None:
    resident = [kernel_rss(pid) for pid in family.pids]
    measured = collect(family.proc.pid)["process_resident_memory_bytes"]
    assert measured >= 2 * (40 << 20)  # what the children wrote
    assert 0.97 * sum(resident) <= measured <= 1.03 * sum(resident), (measured, resident)


def test_open_files_are_those_of_every_process(family: Family) -> None:
    expected = family.report["fds"] + sum(child["fds"] for child in family.report["children"])
    assert collect(family.proc.pid)["process_open_fds"] == expected


def test_open_files_are_counted_in_every_child(own_family: Family) -> None:
    family = own_family
    before = collect(family.proc.pid)["process_open_fds"]
    for child in family.children:
        os.kill(child, signal.SIGUSR1)  # each opens 25 files
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and collect(family.proc.pid)["process_open_fds"] < before + 50:
        time.sleep(0.05)
    assert collect(family.proc.pid)["process_open_fds"] == before + 50


def test_the_start_time_is_the_parents(family: Family) -> None:
    start = collect(family.proc.pid)["process_start_time_seconds"]
    # the boot time the kernel gives is whole seconds, so the start reads up to a second early; the
    # children started 1.2 s after the parent's first statement
    assert family.launched - 1 <= start <= family.report["started"] + 0.05


def test_a_parent_that_is_gone_gives_no_series(own_family: Family) -> None:
    parent = own_family.proc.pid
    own_family.stop()
    assert list(FamilyCollector(parent).collect()) == []


def test_the_series_keep_prometheus_clients_names_types_and_help(family: Family) -> None:
    ours = {(m.name, m.type, m.documentation) for m in FamilyCollector(family.proc.pid).collect()}
    theirs = {(m.name, m.type, m.documentation) for m in ProcessCollector(registry=None).collect()}
    assert {name for name, _, _ in ours} == {
        "process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds"
    }  # fmt: skip
    assert ours <= theirs
