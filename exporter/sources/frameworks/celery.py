"""Celery on kombu's Redis transport: one list per queue and priority step, plus the unacked hash.

A queue is ``<queue>`` and ``<queue>\\x06\\x16<step>`` for every non-zero priority step; LLEN of all
of them is its length. Tasks delivered to a worker sit in the ``unacked`` hash (``[message, exchange,
routing_key]``) with their delivery time in ``unacked_index``: those with an ETA are scheduled, the
others in progress, and in progress longer than the visibility timeout is overdue. Kombu's messages
carry no enqueue time and Celery keeps no dead letters or worker registry in Redis, so there is no
oldest age, DLQ or worker series. Routing keys are taken as queue names (Celery's default routing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsloop.exporter.sources.frameworks.base import Layout, script

if TYPE_CHECKING:
    from opsloop.exporter.config import FrameworkConfig

MAX_UNACKED = 10_000
"""Unacked entries read per scrape; past this the in-progress split is left out rather than slow Redis."""


def _args(entry: FrameworkConfig, now: float) -> list[str]:
    steps = ",".join(str(step) for step in sorted(set(entry.priority_steps) | {0}))
    prefix = entry.prefix if entry.prefix is not None else ""
    return [prefix, repr(now), repr(entry.visibility_timeout), str(MAX_UNACKED), steps]


CELERY = Layout(
    kind="celery",
    script=script("celery.lua"),
    publishes=frozenset({"in_progress", "overdue", "scheduled", "unreadable"}),
    args=_args,
)
