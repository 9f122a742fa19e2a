"""The journal of Redis items moved between keys that no single Redis command can move atomically.

On a Redis Cluster a DLQ and its queue may live in different slots (often on different nodes), so
``dlq_requeue`` cannot move an item in one script. Each batch is written here, durably, before it
leaves the source; the action then settles it in Redis and marks it ``done`` (or ``aborted`` when the
source changed first). A row left ``pending`` by a crash is settled by the next run or at startup.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from opsloop.receiver.store.driver import Op, RunsOps, Stmt

MOVES_SCHEMA = """
CREATE TABLE IF NOT EXISTS redis_moves (
    id TEXT PRIMARY KEY,
    redis TEXT NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    kind TEXT NOT NULL,
    position TEXT NOT NULL,
    items TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at {real} NOT NULL,
    finished_at {real}
);
CREATE INDEX IF NOT EXISTS redis_moves_pending ON redis_moves (redis, state)
"""


@dataclass(frozen=True)
class Move:
    """One batch on its way from ``source`` to ``target``; ``items`` are raw values (zset: member, score)."""

    id: str
    redis: str
    source: str
    target: str
    kind: str
    position: str
    items: list[bytes]


def _encode(values: list[bytes]) -> str:
    return json.dumps([base64.b64encode(v).decode() for v in values])


def _decode(text: str) -> list[bytes]:
    return [base64.b64decode(v) for v in json.loads(text)]


class MoveJournal(RunsOps):
    """Store operations of the move journal (mixed into ``Store``)."""

    async def journal_move(self, move: Move, now: float) -> None:
        """Record a batch as pending; returns once the record is durable."""
        await self._run(self._journal_op(move, now))

    @staticmethod
    def _journal_op(move: Move, now: float) -> Op[None]:
        yield Stmt(
            "INSERT INTO redis_moves (id, redis, source, target, kind, position, items, state, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
            (move.id, move.redis, move.source, move.target, move.kind, move.position, _encode(move.items), now),
        )  # fmt: skip

    async def finish_move(self, move_id: str, state: str, now: float) -> None:
        await self._run(self._finish_move_op(move_id, state, now))

    @staticmethod
    def _finish_move_op(move_id: str, state: str, now: float) -> Op[None]:
        yield Stmt(
            "UPDATE redis_moves SET state = ?, finished_at = ? WHERE id = ? AND state = 'pending'",
            (state, now, move_id),
        )

    async def pending_moves(self, redis: str) -> list[Move]:
        """Batches a crash left unsettled on this Redis, oldest first."""
        return await self._run(self._pending_moves_op(redis))

    @staticmethod
    def _pending_moves_op(redis: str) -> Op[list[Move]]:
        result = yield Stmt(
            "SELECT id, redis, source, target, kind, position, items FROM redis_moves "
            "WHERE redis = ? AND state = 'pending' ORDER BY created_at, id",
            (redis,),
        )
        return [Move(row[0], row[1], row[2], row[3], row[4], row[5], _decode(row[6])) for row in result.rows]
