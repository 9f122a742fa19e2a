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

from tests.receiver.test_processes import kernel_rss

FAMILY = r"""
import json, os, signal, sys, time

started = time.time()
burner = os.fork()
if burner == 0:  # a child that uses CPU, then ends and is reaped
    until = time.process_time() + 0.3
    while time.process_time() < until:
        pass
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
        t = os.times()
        os.write(ready_w, (json.dumps({"pid": os.getpid(), "cpu": t.user + t.system}) + "\n").encode())
        os.close(ready_w)
        while True:
            time.sleep(60)
    children.append(pid)
os.close(ready_w)
reports = [json.loads(line) for line in os.fdopen(ready_r)]
t = os.times()
print(json.dumps({"started": started, "cpu": t.user + t.system, "reaped": t.children_user + t.children_system,
                  "children": reports}), flush=True)
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
    # each process' figure is counted in ticks; the children and the parent sleep after reporting
    assert expected - 4 * TICK <= cpu <= expected + 4 * TICK + 0.05, (cpu, expected)


def test_resident_memory_is_the_sum_of_the_family(family: Family) -> None:
    resident = [kernel_rss(pid) for pid in family.pids]
    measured = collect(family.proc.pid)["process_resident_memory_bytes"]
    assert measured >= 2 * (40 << 20)  # what the children wrote
    assert 0.97 * sum(resident) <= measured <= 1.03 * sum(resident), (measured, resident)


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


def test_the_series_keep_prometheus_clients_names_and_types(family: Family) -> None:
    metrics = {metric.name: metric.type for metric in FamilyCollector(family.proc.pid).collect()}
    assert metrics == {
        "process_cpu_seconds": "counter",
        "process_resident_memory_bytes": "gauge",
        "process_open_fds": "gauge",
        "process_start_time_seconds": "gauge",
    }
