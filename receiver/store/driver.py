"""How a store operation talks to a backend: statements out, results in, one transaction per operation.

An operation (``Op``) is a generator that yields ``Stmt`` and receives ``Result``; backends run operations
in threads of their own: ``drive`` runs one statement after another, ``drive_together`` several
independent operations side by side, one round trip per step of all (PostgreSQL's group commit).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


class StoreUnavailable(Exception):
    """The store cannot be reached or written right now; callers answer 503 or retry later."""


@dataclass(frozen=True)
class Stmt:
    sql: str
    params: Sequence[Any] = ()


@dataclass(frozen=True)
class Result:
    rows: list[tuple[Any, ...]]
    rowcount: int


Op = Generator[Stmt, Result, T]


class RunsOps(abc.ABC):
    """A base of the store's groups of operations: the backend supplies ``_run``."""

    @abc.abstractmethod
    async def _run(self, op: Op[T]) -> T:
        """Drive ``op`` inside one transaction; raise StoreUnavailable when the store cannot be used."""


def marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def drive(op: Op[T], execute: Callable[[Stmt], Result]) -> T:
    """Run an operation's statements one after another, in the backend's thread."""
    try:
        stmt = next(op)
        while True:
            stmt = op.send(execute(stmt))
    except StopIteration as done:
        return done.value


def drive_together(ops: Sequence[Op[T]], execute_all: Callable[[list[Stmt]], list[Result]]) -> list[T]:
    """Run operations side by side: each step sends the next statement of every unfinished one at once.

    Their statements interleave, so the operations must touch disjoint rows (then the outcome is that of
    running them one after another); the caller's order of ``ops`` is the order of every step.
    """
    results: list[Any] = [None] * len(ops)
    waiting: dict[int, Stmt] = {}

    def advance(index: int, result: Result | None) -> None:
        try:
            waiting[index] = ops[index].send(result)  # type: ignore[arg-type]  # None starts a generator
        except StopIteration as done:
            results[index] = done.value

    for index in range(len(ops)):
        advance(index, None)
    while waiting:
        step = list(waiting.items())
        waiting.clear()
        for (index, _), result in zip(step, execute_all([stmt for _, stmt in step]), strict=True):
            advance(index, result)
    return results
