"""Durable stores for the receiver: SQLite (one process) or PostgreSQL (several replicas)."""

from __future__ import annotations

from opsloop.receiver.store.base import Store, StoreUnavailable
from opsloop.receiver.store.postgres import PostgresStore
from opsloop.receiver.store.sqlite import SqliteStore

__all__ = ["Store", "StoreUnavailable", "open_store"]


def open_store(url: str) -> Store:
    """``sqlite:///path/to/file.db`` or ``postgresql://user@host:port/db`` (not yet opened)."""
    if url.startswith("sqlite:///"):
        return SqliteStore(url.removeprefix("sqlite://"))
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    raise ValueError(f"unsupported store URL {url.split(':', 1)[0]}:// (use sqlite:/// or postgresql://)")
