"""The webhook writer's transaction on libpq's own pipeline: each statement text prepared once per
connection, every statement of a step sent before the first result is read, one sync per step.

Every other operation goes through psycopg's cursors. The webhook writer does not: it is the one thread
a PostgreSQL receiver's acknowledgements queue behind, and psycopg's cursor layer (a cursor and an
``executemany`` per statement text, a pipeline exchange per statement, its result sets) cost it about
three quarters of its CPU per routed webhook, taken from the interpreter lock the event loop needs too
(benchmarks/README.md). Through psycopg's ``pq`` wrapper of libpq the same statements cost about a
quarter of that. Types stay psycopg's: its ``Transformer`` dumps the parameters and loads the rows, and
a statement is prepared per parameter types, as psycopg prepares its own.

A statement the server refuses raises the psycopg error class of its SQLSTATE once its step is read,
and leaving the ``with`` block then rolls the transaction back: the caller sees what a cursor would
have raised, on a connection that is idle again.
"""

from __future__ import annotations

import itertools
import select
from collections.abc import Sequence
from types import TracebackType
from weakref import WeakKeyDictionary

import psycopg
from opsloop.receiver.store.driver import Result, Stmt
from psycopg import errors, pq
from psycopg.adapt import PyFormat, Transformer

Key = tuple[str, tuple[int, ...]]
Queued = Key | bytes | None
"""What waits for a result: a statement by its name, its prepare by its key, None for a command (BEGIN,
COMMIT, ROLLBACK), whose result is checked and not returned."""
_PREPARED: WeakKeyDictionary[psycopg.Connection[tuple[object, ...]], dict[Key, bytes]] = WeakKeyDictionary()
"""Per connection: the name of each statement text and parameter types prepared on it."""
_NAMES = itertools.count()
DONE = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)


class Pipeline:
    """``with Pipeline(conn) as pipeline: pipeline.run(statements)...``: one transaction, committed when
    the block ends without an error; its commit's result is read (durable) before ``__exit__`` returns.

    psycopg's connections are nonblocking, as libpq asks of a pipeline (a blocking send could wait for a
    server that waits for this side to read): every wait here is a ``select`` on the socket."""

    _queued: list[Queued]

    def __init__(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        self._pg = conn.pgconn
        self._encoding = conn.info.encoding
        self._tx = Transformer(conn)
        self._names = _PREPARED.setdefault(conn, {})

    def __enter__(self) -> Pipeline:
        self._pg.enter_pipeline_mode()
        self._pg.send_query_params(b"BEGIN", None)
        self._queued = [None]  # read with the first step's results: no round trip of its own
        return self

    def run(self, stmts: Sequence[Stmt]) -> list[Result]:
        """Every statement of ``stmts`` sent, then their results read, in order: one per statement."""
        for stmt in stmts:
            params = self._tx.dump_sequence(stmt.params, [PyFormat.TEXT] * len(stmt.params))
            key = (stmt.sql, tuple(self._tx.types))
            name = self._names.get(key)
            if name is None:
                name = self._names[key] = f"opsloop_ingest_{next(_NAMES)}".encode()
                self._pg.send_prepare(name, _numbered(stmt.sql), self._tx.types)
                self._queued.append(key)
            self._pg.send_query_prepared(name, params)
            self._queued.append(name)
        return self._sync()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        try:
            if error is None:
                self._pg.send_query_params(b"COMMIT", None)
                self._queued.append(None)
                self._sync()
            elif self._pg.status == pq.ConnStatus.OK:
                # What the error left sent but unread (a parameter that cannot be dumped stops a step half
                # sent) is read first, its errors not the one raised: a refusal among it would abort a
                # ROLLBACK sent with it.
                self._sync(raising=False)
                self._pg.send_query_params(b"ROLLBACK", None)
                self._queued = [None]
                self._sync()
        finally:
            if self._pg.status == pq.ConnStatus.OK:
                self._pg.exit_pipeline_mode()

    def _sync(self, raising: bool = True) -> list[Result]:
        """Send a sync, then read one result per queued item and the sync's own; returns the statements'
        results, or raises the first error once all of them are read."""
        queued, self._queued = self._queued, []
        self._pg.pipeline_sync()
        _flush(self._pg)
        results: list[Result] = []
        failed: list[psycopg.Error] = []
        for item in queued:
            res = self._result()
            if res.status not in DONE:
                failed.append(self._error(res))
                if isinstance(item, tuple):
                    del self._names[item]  # not prepared: its next use prepares it again
            elif isinstance(item, bytes):
                results.append(self._rows(res))
        if self._result().status != pq.ExecStatus.PIPELINE_SYNC:
            raise psycopg.OperationalError("the server's results do not match the statements sent")
        if failed and raising:
            raise failed[0]  # the statements after a refused one only say the pipeline was aborted
        return results

    def _result(self) -> pq.abc.PGresult:
        """The next result, waited for off the interpreter lock, and the end of its results read after it."""
        res = self._next()
        if res is None:
            raise psycopg.OperationalError(f"the connection ended: {pq.error_message(self._pg, self._encoding)}")
        if res.status != pq.ExecStatus.PIPELINE_SYNC:
            self._next()  # the NULL that ends each statement's results
        return res

    def _next(self) -> pq.abc.PGresult | None:
        while self._pg.is_busy():
            select.select([self._pg.socket], [], [])
            self._pg.consume_input()
        return self._pg.get_result()

    def _rows(self, res: pq.abc.PGresult) -> Result:
        rows: list[tuple[object, ...]] = []
        if res.nfields:
            self._tx.set_pgresult(res)
            rows = self._tx.load_rows(0, res.ntuples, tuple)
        count = res.command_tuples
        return Result(rows, -1 if count is None else count)

    def _error(self, res: pq.abc.PGresult) -> psycopg.Error:
        """What a cursor would raise: the psycopg class of the SQLSTATE, OperationalError for a lost connection."""
        message = pq.error_message(res, self._encoding)
        if self._pg.status != pq.ConnStatus.OK:
            return psycopg.OperationalError(message)
        try:  # an aborted statement has no SQLSTATE: a DatabaseError, never the one raised (see _sync)
            return errors.lookup((res.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode())(message)
        except KeyError:
            return psycopg.DatabaseError(message)


def _flush(pg: pq.abc.PGconn) -> None:
    """Send what libpq holds, reading meanwhile so that the server never waits on a full socket."""
    while pg.flush():
        readable, _, _ = select.select([pg.socket], [pg.socket], [])
        if readable:
            pg.consume_input()


def _numbered(sql: str) -> bytes:
    """``?`` placeholders as PostgreSQL's ``$1, $2, ...`` (the store's SQL has no ``?`` anywhere else), and
    ``%%`` as ``%``, as psycopg reads the text a cursor is given."""
    parts = sql.replace("%%", "%").split("?")
    return "".join(part + (f"${n}" if n < len(parts) else "") for n, part in enumerate(parts, 1)).encode()
