"""RQ: ``rq:queue:<name>`` lists of job ids, job hashes ``rq:job:<id>`` and per-queue registries.

Ages come from the job hash: ``enqueued_at`` for the queue, ``ended_at`` for the failed registry,
whose scores are expiry times (failure + ``failure_ttl``), not failure times. In progress is the
started registry ``rq:wip:<name>``, overdue its entries whose execution heartbeat expired (what RQ's
own cleanup treats as abandoned). Workers are members of ``rq:workers:<name>`` whose ``rq:worker:``
hash still exists: it expires when heartbeats stop, while the set keeps a SIGKILLed worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsloop.exporter.sources.frameworks.base import Layout, script

if TYPE_CHECKING:
    from opsloop.exporter.config import FrameworkConfig


def _args(entry: FrameworkConfig, now: float) -> list[str]:
    return [entry.prefix if entry.prefix is not None else "rq:", repr(now)]


RQ = Layout(
    kind="rq",
    script=script("rq.lua"),
    publishes=frozenset({"oldest", "in_progress", "overdue", "scheduled", "dlq", "workers", "unreadable"}),
    args=_args,
)
