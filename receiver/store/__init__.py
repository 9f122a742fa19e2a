"""Durable stores for the receiver: SQLite (one process) or PostgreSQL (several replicas).

The package's public names are all a caller needs; ``driver`` (how operations run), ``schema`` (tables
and row mapping), ``ops`` (the shared SQL of every write), ``limits`` (plan gating) and ``reads`` (the
admin queries) stay inside.
"""

from __future__ import annotations

from opsloop.receiver.store.driver import Op, Result, Stmt, StoreUnavailable
from opsloop.receiver.store.moves import Move, MoveJournal
from opsloop.receiver.store.ops import Store
from opsloop.receiver.store.postgres import PostgresStore
from opsloop.receiver.store.reads import IncidentFilter, StatsFacts, StatsIncident, StatsRun
from opsloop.receiver.store.sqlite import SqliteStore

__all__ = [
    "IncidentFilter",
    "Move",
    "MoveJournal",
    "Op",
    "Result",
    "StatsFacts",
    "StatsIncident",
    "StatsRun",
    "Stmt",
    "Store",
    "StoreUnavailable",
    "open_store",
]


def open_store(url: str) -> Store:
    """``sqlite:///path/to/file.db`` or ``postgresql://user@host:port/db`` (not yet opened)."""
    if url.startswith("sqlite:///"):
        return SqliteStore(url.removeprefix("sqlite://"))
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    raise ValueError(f"unsupported store URL {url.partition(':')[0]}:// (use sqlite:/// or postgresql://)")
