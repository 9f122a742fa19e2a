"""Event loop stretches: every asyncio callback that runs longer than ``LOOPWATCH_MS`` (default 5) ms.

A webhook that arrives while the event loop runs one long callback waits for all of it, so the longest
callbacks bound the latency tail. Loaded at interpreter start when this folder is on ``PYTHONPATH`` and
``LOOPWATCH_LOG`` names a file; a child process (the receiver a benchmark starts) inherits both:

    LOOPWATCH_LOG=/tmp/loop.log PYTHONPATH=benchmarks/loopwatch python benchmarks/webhook_ack.py ...

Each line: the time, the callback's duration, and for a task the chain of coroutines it was awaiting when
the callback ended (where the stretch stopped), innermost last. A callback's duration includes the time
its thread waited for the interpreter lock. Measurement only: the project never loads it.
"""

from __future__ import annotations

import asyncio.events
import os
import time
from typing import Any

_PATH = os.environ.get("LOOPWATCH_LOG")
_LIMIT = float(os.environ.get("LOOPWATCH_MS", "5")) / 1000


def _awaiting(coro: Any) -> str:
    chain = []
    while coro is not None and getattr(coro, "cr_frame", None) is not None:
        chain.append(f"{coro.cr_frame.f_code.co_name}:{coro.cr_frame.f_lineno}")
        coro = coro.cr_await
    return " > ".join(chain[-4:])


def _watch(path: str) -> None:
    log = open(path, "a", buffering=1)  # noqa: SIM115  # open for the life of the process
    run = asyncio.events.Handle._run

    def timed(handle: asyncio.events.Handle) -> None:
        start = time.perf_counter()
        run(handle)
        took = time.perf_counter() - start
        if took > _LIMIT:
            owner = getattr(handle._callback, "__self__", None)  # type: ignore[attr-defined]
            where = _awaiting(owner.get_coro()) if isinstance(owner, asyncio.Task) else ""
            log.write(f"{time.time():.3f} {took * 1000:.1f} ms {where}\n")

    asyncio.events.Handle._run = timed  # type: ignore[method-assign]


if _PATH:
    _watch(_PATH)
