"""arq: one sorted set per queue (``arq:queue`` by default) scored by due time in milliseconds.

Waiting, deferred and running jobs share the set: entries not yet due are scheduled; due entries
with an ``arq:in-progress:<id>`` key are running; the rest wait. Job records are pickled, so the
oldest age is the time since the oldest waiting job became due (its enqueue time unless deferred).
arq keeps no dead letters and no worker registry in Redis: no DLQ or worker series.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsloop.exporter.sources.frameworks.base import Layout, script

if TYPE_CHECKING:
    from opsloop.exporter.config import FrameworkConfig

MAX_RUNNING_CHECKS = 1000
"""Due entries checked for a running job per queue and scrape (workers take the head first)."""


def _args(_: FrameworkConfig, now: float) -> list[str]:
    return [str(int(now * 1000)), str(MAX_RUNNING_CHECKS)]


ARQ = Layout(
    kind="arq",
    script=script("arq.lua"),
    publishes=frozenset({"oldest", "in_progress", "scheduled"}),
    args=_args,
)
