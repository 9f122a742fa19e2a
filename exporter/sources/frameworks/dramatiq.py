"""Dramatiq's Redis broker: ``<ns>:<queue>`` lists of message ids and ``<ns>:<queue>.msgs`` bodies.

Dead letters are ``<ns>:<queue>.XQ`` (sorted set scored by dead-letter time, bodies in ``.XQ.msgs``);
delayed messages live in the delay queue ``<queue>.DQ`` until their ETA, including those a worker
has fetched and holds in memory, so scheduled is ``HLEN <queue>.DQ.msgs``. In progress is the bodies
no longer listed (fetched, not acked). There is no worker series: ``<ns>:__heartbeats__`` holds every
broker client that talked to Redis (producers too, one entry per consumer) and no queue. Without
``queues:`` the queues are found from their ``.msgs`` hashes (cached SCAN discovery).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from opsloop.exporter.sources.frameworks.base import Layout, script

if TYPE_CHECKING:
    from opsloop.exporter.config import FrameworkConfig


def _namespace(entry: FrameworkConfig) -> str:
    return entry.namespace if entry.namespace is not None else "dramatiq"


def _args(entry: FrameworkConfig, _: float) -> list[str]:
    return [_namespace(entry)]


def _pattern(entry: FrameworkConfig) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", _namespace(entry)) + ":*.msgs"


def _queue_from_key(entry: FrameworkConfig, key: str) -> str | None:
    """``<ns>:default.DQ.msgs`` and ``<ns>:default.XQ.msgs`` both belong to queue ``default``."""
    name = key.removeprefix(_namespace(entry) + ":").removesuffix(".msgs")
    name = name.removesuffix(".DQ").removesuffix(".XQ")
    return name or None


DRAMATIQ = Layout(
    kind="dramatiq",
    script=script("dramatiq.lua"),
    publishes=frozenset({"oldest", "in_progress", "scheduled", "dlq", "unreadable"}),
    args=_args,
    discovery_pattern=_pattern,
    queue_from_key=_queue_from_key,
)
