"""Group commit: concurrent writes queue up and one writer task (or a few) commits what waits, once per batch.

A durable commit costs one WAL flush, whatever it holds; one flush per webhook caps a store at the
disk's flush rate. Here a writer takes everything waiting (up to ``max_batch``), hands it to
``commit`` (one transaction), and only after that returns settles each caller's future with its own
result or error. So nothing is acknowledged before its commit, and a failed commit fails every caller
in that batch (the webhook handler answers 503; Alertmanager retries).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

W = TypeVar("W")
R = TypeVar("R")


class GroupCommit(Generic[W, R]):
    """``await submit(item)`` returns ``item``'s result once the batch holding it is committed."""

    def __init__(
        self,
        commit: Callable[[Sequence[W]], Awaitable[Sequence[R | BaseException]]],
        writers: int = 1,
        max_batch: int = 256,
    ) -> None:
        self._commit = commit
        self._writers = writers
        self._max_batch = max_batch
        self._queue: deque[tuple[W, asyncio.Future[R]]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._active = 0  # counted by the writers themselves: a finished task leaves _tasks only later

    async def submit(self, item: W) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieved)  # a caller that gave up leaves no "never retrieved" warning
        self._queue.append((item, future))
        if self._active < self._writers:
            # A writer starts only when one is free: while all are committing, new items wait and form
            # the next batch, so batches grow with the load and shrink to one item when it is quiet.
            self._active += 1
            task = asyncio.create_task(self._write())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(future)  # a caller that gives up does not cancel its batch

    async def _write(self) -> None:
        try:
            await self._write_batches()
        finally:
            self._active -= 1  # no await between the empty queue and this: no item is left unwritten

    async def _write_batches(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._max_batch))]
            futures = [future for _, future in batch]
            try:
                results = await self._commit([item for item, _ in batch])
                # Paired before any is settled: a commit that breaks one result per item fails them all
                # (ValueError) instead of settling some and leaving the others waiting.
                settled = list(zip(futures, results, strict=True))
            except Exception as exc:  # every waiter must be settled, whatever went wrong
                settled = [(future, exc) for future in futures]
            # Callers await their future through a shield, so each is settled here, once.
            for future, result in settled:
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def drain(self) -> None:
        """Wait for the writers to commit what is queued (before the store closes)."""
        while self._tasks:
            await asyncio.wait(self._tasks)  # a writer's own error is not drain's: it settled its callers


def _retrieved(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()
