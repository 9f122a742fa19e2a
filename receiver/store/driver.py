"""How a store operation talks to a backend: statements out, results in, one transaction per operation.

An operation (``Op``) is a generator that yields ``Stmt`` and receives ``Result``; ``drive`` runs it
synchronously (SQLite's writer thread), ``drive_async`` one await at a time (PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
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


def marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def drive(op: Op[T], execute: Callable[[Stmt], Result]) -> T:
    """Run an operation's statements synchronously (SQLite's writer thread)."""
    try:
        stmt = next(op)
        while True:
            stmt = op.send(execute(stmt))
    except StopIteration as done:
        return done.value


async def drive_async(op: Op[T], execute: Callable[[Stmt], Awaitable[Result]]) -> T:
    """Run an operation's statements one await at a time (PostgreSQL)."""
    try:
        stmt = next(op)
        while True:
            stmt = op.send(await execute(stmt))
    except StopIteration as done:
        return done.value
