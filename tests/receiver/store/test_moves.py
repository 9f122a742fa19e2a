"""The journal of cross-slot Redis moves on both backends, checked against the rows it leaves.

``dlq_requeue`` on a Redis Cluster writes each batch here before it leaves its source and settles it after;
a crash leaves it ``pending`` for the next run. The rows are read beside the store (``rows``), and the
items as the journal's format stores them: a JSON list of base64 texts.
"""

from __future__ import annotations

import base64
import json

from opsloop.receiver.store import Move, Store

from tests.receiver.store.test_ops import NOW
from tests.receiver.store.test_ops_rows import rows

RAW = [b"m1", b"\x00\xff not utf-8", b"", b'{"json": "as text"}']


def move(move_id: str, redis: str = "redis-a", **fields: object) -> Move:
    values: dict[str, object] = {"source": "dlq:a", "target": "queue:a", "kind": "list", "position": "left"}
    values["items"] = RAW
    values.update(fields)
    return Move(move_id, redis, **values)  # type: ignore[arg-type]


async def test_a_journalled_move_is_a_pending_row_holding_every_field(store: Store) -> None:
    await store.journal_move(move("m-1", kind="zset", position="right", items=[b"member", b"1.5"]), NOW)
    assert rows(store, "SELECT id, redis, source, target, kind, position, state, created_at, finished_at "
                       "FROM redis_moves") == [
        ("m-1", "redis-a", "dlq:a", "queue:a", "zset", "right", "pending", NOW, None),
    ]  # fmt: skip
    ((items,),) = rows(store, "SELECT items FROM redis_moves")
    assert [base64.b64decode(text) for text in json.loads(items)] == [b"member", b"1.5"]


async def test_pending_moves_come_back_whole_oldest_first_for_their_redis_only(store: Store) -> None:
    await store.journal_move(move("m-c"), NOW + 2)
    await store.journal_move(move("m-b", target="queue:b", items=[]), NOW + 1)
    await store.journal_move(move("m-a", source="dlq:z"), NOW + 2)  # same time: by id
    await store.journal_move(move("m-0", redis="redis-b"), NOW)  # another Redis
    pending = await store.pending_moves("redis-a")
    assert [m.id for m in pending] == ["m-b", "m-a", "m-c"]
    assert pending == [move("m-b", target="queue:b", items=[]), move("m-a", source="dlq:z"), move("m-c")]
    assert await store.pending_moves("redis-b") == [move("m-0", redis="redis-b")]
    assert await store.pending_moves("redis-c") == []


async def test_a_finished_move_is_no_longer_pending_and_keeps_its_first_outcome(store: Store) -> None:
    for move_id in ("m-1", "m-2", "m-3"):
        await store.journal_move(move(move_id), NOW)
    await store.finish_move("m-1", "done", NOW + 5)
    await store.finish_move("m-2", "aborted", NOW + 6)
    await store.finish_move("m-1", "aborted", NOW + 9)  # settled already: a late second outcome changes nothing
    assert [m.id for m in await store.pending_moves("redis-a")] == ["m-3"]
    assert rows(store, "SELECT id, state, finished_at FROM redis_moves ORDER BY id") == [
        ("m-1", "done", NOW + 5), ("m-2", "aborted", NOW + 6), ("m-3", "pending", None),
    ]  # fmt: skip
