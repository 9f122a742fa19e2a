"""Crash takeover: a restarted receiver resumes at once the work its dead predecessor still leases.

Leases are short and renewed by a heartbeat, so any replica takes over a dead process's work once the
lease runs out. A process restarted on the same host need not wait even that long: worker ids name the
host and the process id, and a lease held by another process of this host that no longer exists can be
ended right away. The work then counts as interrupted, so a stage whose actions had started is never
run twice: its outcome is unknown and the plan verifies it instead.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable

from opsloop.receiver.store import Store

log = logging.getLogger(__name__)


def worker_id() -> str:
    """``host:pid:random``: unique per process, and telling which host and process held a lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's process
        return True
    return True


def dead_predecessors(owners: Iterable[str], host: str, pid: int) -> list[str]:
    """The owners that were other processes of ``host`` which no longer exist."""
    dead = []
    for owner in owners:
        parts = owner.rsplit(":", 2)
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        owner_pid = int(parts[1])
        if owner_pid != pid and not process_exists(owner_pid):
            dead.append(owner)
    return dead


async def take_over(store: Store, now: float | None = None) -> int:
    """End the leases of this host's dead receivers; returns how many jobs became due again."""
    now = time.time() if now is None else now
    dead = dead_predecessors(await store.lease_owners(now), socket.gethostname(), os.getpid())
    taken = await store.expire_leases(dead, now)
    if taken:
        log.warning("took over the work of a dead predecessor", extra={"owners": dead, "jobs": taken})
    return taken
