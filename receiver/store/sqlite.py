"""SQLite store (the default): one connection owned by one writer thread, WAL, durable commits.

Operations run in the writer thread, a whole operation in one hop, so they are serialised without
asyncio locks and the event loop never waits on the disk. ``synchronous=FULL`` makes each commit
durable before the webhook is acknowledged; operations queued meanwhile share one commit. Large reads
(a group's members, the members a group holds back) run on a second, read-only connection in a thread
of its own: WAL lets it read the last commit while the writer goes on committing webhooks. Long writes
of a group (ending a message, holding members back) go in parts (``part_rows``), so a webhook committed
with one waits for a few milliseconds, not for a thousand rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

from opsloop.receiver.store.driver import Op, Result, Stmt, StoreUnavailable, T, drive
from opsloop.receiver.store.ops import Store
from opsloop.receiver.store.schema import Dialect

log = logging.getLogger(__name__)

SQLITE = Dialect(
    id_column="INTEGER PRIMARY KEY", real="REAL", skip_locked="", row_lock="", gate_lock=None,
    contains="instr({column}, ?) > 0", json_field="json_extract({column}, '$.{name}')",
)  # fmt: skip


class SqliteStore(Store):
    dialect = SQLITE
    part_rows = 200
    """Webhooks commit in the same writer: a group's long writes go in parts of 200 members (1-4 ms each)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._reader: sqlite3.Connection | None = None
        self._reader_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-reader")
        self._queue: deque[_Queued] = deque()
        self._scheduled = False  # a commit group is queued in the writer and will take what is queued

    async def open(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open)

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None)  # used in the writer thread alone
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA foreign_keys=ON")
            for statement in self.schema():
                try:
                    conn.execute(statement)
                except sqlite3.OperationalError as exc:
                    if "duplicate column name" not in str(exc):  # an upgrade this store had already
                        raise
            self._conn = conn  # from here on, close() closes it
            reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            reader.execute("PRAGMA query_only=ON")
            reader.execute("PRAGMA busy_timeout=5000")
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        self._reader = reader
        log.info("store opened", extra={"store": "sqlite", "path": str(self.path)})

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        if self._reader is not None:
            await loop.run_in_executor(self._reader_executor, self._reader.close)
            self._reader = None
        self._reader_executor.shutdown()  # waits for its thread
        if self._conn is not None:
            await loop.run_in_executor(self._executor, self._conn.close)
            self._conn = None
        self._executor.shutdown()  # waits for the writer thread

    async def _read(self, op: Op[T]) -> T:
        try:
            pending = asyncio.get_running_loop().run_in_executor(self._reader_executor, self._read_now, op)
        except RuntimeError as exc:  # the store was closed: nothing will ever run this read
            raise StoreUnavailable("the store is closed") from exc
        return await pending

    def _read_now(self, op: Op[T]) -> T:
        """One read transaction: every statement of ``op`` sees the same commit."""
        conn = self._reader
        if conn is None:
            raise StoreUnavailable("the store is not open")
        try:
            conn.execute("BEGIN")
            try:
                return drive(op, lambda stmt: _execute(conn, stmt))
            finally:
                conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"sqlite: {exc}") from exc

    async def _run(self, op: Op[T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        queued = _Queued(op, future, loop)
        self._queue.append(queued)
        if not self._scheduled:
            # The writer clears the flag before it takes the queue: an operation queued after that
            # finds it cleared and schedules the next group (one wake-up per group, not per operation).
            self._scheduled = True
            try:
                self._executor.submit(self._commit_group)
            except RuntimeError as exc:  # the store was closed: nothing will ever run this operation
                self._scheduled = False
                self._queue.remove(queued)
                raise StoreUnavailable("the store is closed") from exc
        return await future

    def _commit_group(self) -> None:
        """Run every queued operation in one transaction, each in its own savepoint, then commit once.

        Concurrent webhooks share one fsync (group commit); a failing operation is rolled back to its
        savepoint alone. No result is handed back before the commit, so an acknowledgement still means
        the data is on disk.
        """
        self._scheduled = False
        batch: list[_Queued] = []
        while self._queue:
            batch.append(self._queue.popleft())
        if not batch:
            return  # an earlier call took this call's operations
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                outcomes = [self._in_savepoint(conn, queued.op) for queued in batch]
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        except Exception as exc:
            # Every waiter must be settled. Not only OperationalError: a corrupt file (DatabaseError) or a
            # closed connection (ProgrammingError) fails the group too, else the webhook handler and the
            # worker would await their futures forever.
            error = exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(f"sqlite: {exc}")
            outcomes = [(None, error)] * len(batch)
        settled: dict[asyncio.AbstractEventLoop, list[_Settled]] = {}
        for queued, (value, error) in zip(batch, outcomes, strict=True):
            settled.setdefault(queued.loop, []).append(_Settled(queued.future, value, error))
        for loop, results in settled.items():  # one wake-up of each waiting event loop
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits there any more
                loop.call_soon_threadsafe(_settle, results)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailable("the store is not open")
        return self._conn

    @staticmethod
    def _in_savepoint(conn: sqlite3.Connection, op: Op[object]) -> tuple[object, BaseException | None]:
        conn.execute("SAVEPOINT op")
        try:
            value = drive(op, lambda stmt: _execute(conn, stmt))
        except sqlite3.OperationalError:
            raise  # the database itself failed: the whole group fails
        except Exception as exc:
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
            return None, exc
        conn.execute("RELEASE op")
        return value, None


def _execute(conn: sqlite3.Connection, stmt: Stmt) -> Result:
    cursor = conn.execute(stmt.sql, tuple(stmt.params))
    return Result(cursor.fetchall(), cursor.rowcount)


class _Queued(NamedTuple):
    """An operation waiting for the writer, and the event loop its caller waits in."""

    op: Op[Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


class _Settled(NamedTuple):
    """An operation's outcome, to be handed to its caller in the caller's event loop."""

    future: asyncio.Future[Any]
    value: object
    error: BaseException | None


def _settle(results: list[_Settled]) -> None:
    for future, value, error in results:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
