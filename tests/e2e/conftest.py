"""End-to-end fixtures: the whole loop started once per test, and a timer whose steps reach the output."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from opsloop.demo.stack import LoopStack, PlanSettings


class StepTimer:
    """Seconds from the start of the scenario to each step, written to the test report."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.steps: list[tuple[str, float]] = []

    def mark(self, step: str) -> None:
        self.steps.append((step, time.monotonic() - self.started))

    def summary(self) -> str:
        return ", ".join(f"{step} {seconds:.1f}s" for step, seconds in self.steps)


@pytest.fixture
def step_timer(request: pytest.FixtureRequest) -> Iterator[StepTimer]:
    timer = StepTimer()
    yield timer
    request.node.user_properties.append(("step timings", timer.summary()))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print each end-to-end test's step timings, passed or failed, at the end of the run."""
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "teardown":
                continue  # the timings are recorded when the test's fixtures are torn down
            for name, text in report.user_properties:
                if name == "step timings":
                    terminalreporter.write_line(f"{report.nodeid} step timings: {text}")


@pytest.fixture
def loop_stack() -> Iterator[Callable[[PlanSettings], LoopStack]]:
    """A stack in its own temp dir (not pytest's: PostgreSQL's system user must reach its data)."""
    stacks: list[LoopStack] = []

    def start(plan: PlanSettings) -> LoopStack:
        stack = LoopStack(Path(tempfile.mkdtemp(prefix="opsloop-e2e-")), plan=plan)
        stacks.append(stack)
        stack.start()
        return stack

    yield start
    for stack in stacks:
        stack.cleanup()


async def until(check: Callable[[], Awaitable[bool] | bool], what: str, timeout: float = 90.0) -> None:
    """Poll ``check`` once a second (bounded by ``timeout``) until it holds."""
    for _ in range(int(timeout * 2)):
        result = check()
        if await result if asyncio.iscoroutine(result) else result:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
