"""Moving DLQ items between keys in different Redis Cluster slots without losing or duplicating one.

No Redis command spans two slots, so a batch moves in three steps, each atomic on its own node:

1. the batch (the items the move would take next) is written to the receiver's store as ``pending``;
2. ``TAKE`` removes exactly those items from the source, if they are still there, and adds the move id
   to a marker set in the source's slot;
3. ``PUT`` adds them to the target, unless the target's marker set already holds the move id.

A crash between any two steps leaves a ``pending`` row that ``settle`` finishes from what Redis says:
the id in the target's marker means it arrived; in the source's marker only, it left but did not
arrive, so PUT runs (idempotent); in neither, nothing happened and the items are still in the source.
Markers expire after ``MARKER_TTL`` and are removed once a move is recorded finished.
"""

from __future__ import annotations

import logging
import time
import uuid
from functools import cache

from opsloop.receiver.store import Move, MoveJournal
from redis.asyncio import RedisCluster
from redis.crc import key_slot

log = logging.getLogger(__name__)

MARKER_TTL = 7 * 86400

# The batch the move takes next, exactly as the atomic same-slot move would (see dlq_requeue).
# KEYS: source. ARGV: wanted, batch, position. Returns {kind, size, n, item...} (zset: member, score...).
_WINDOW = """
local function window(source, wanted, batch, position)
  local kind = redis.call('TYPE', source)['ok']
  if kind == 'none' then return kind, 0, 0, {} end
  if kind ~= 'list' and kind ~= 'zset' then
    return redis.error_reply('dlq_requeue moves lists and sorted sets; ' .. source .. ' is a ' .. kind)
  end
  local size
  if kind == 'list' then size = redis.call('LLEN', source) else size = redis.call('ZCARD', source) end
  local n = math.min(wanted, size)
  local k = math.min(batch, n)
  if k == 0 then return kind, size, n, {} end
  if kind == 'zset' then return kind, size, n, redis.call('ZRANGE', source, 0, k - 1, 'WITHSCORES') end
  if position == 'producer_end' then return kind, size, n, redis.call('LRANGE', source, -k, -1) end
  return kind, size, n, redis.call('LRANGE', source, -n, k - n - 1)
end
"""
_PEEK = (
    _WINDOW
    + """
local kind, size, n, items = window(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3])
if type(kind) == 'table' then return kind end
return {kind, size, n, unpack(items)}
"""
)
# KEYS: source, marker. ARGV: id, n, batch, position, ttl, expected item... Returns 1 if taken, 0 if changed.
_TAKE = (
    _WINDOW
    + """
local source, marker = KEYS[1], KEYS[2]
local n, position = tonumber(ARGV[2]), ARGV[4]
local kind, size, now_n, items = window(source, n, tonumber(ARGV[3]), position)
if type(kind) == 'table' then return kind end
if now_n ~= n or #items ~= #ARGV - 5 then return 0 end
for i = 1, #items do if items[i] ~= ARGV[i + 5] then return 0 end end
local k = #items
if kind == 'zset' then
  for i = 1, k, 2 do redis.call('ZREM', source, items[i]) end
elseif position == 'producer_end' then
  redis.call('LTRIM', source, 0, -k - 1)
else
  k = #items
  local older = {}
  if n > k then older = redis.call('LRANGE', source, k - n, -1) end
  redis.call('LTRIM', source, 0, -n - 1)
  for i = 1, #older, 1000 do redis.call('RPUSH', source, unpack(older, i, math.min(i + 999, #older))) end
end
redis.call('SADD', marker, ARGV[1])
redis.call('EXPIRE', marker, ARGV[5])
return 1
"""
)
# KEYS: target, marker. ARGV: id, kind, position, ttl, item... Returns 1 if added now, 0 if added before.
_PUT = """
local target, marker = KEYS[1], KEYS[2]
if redis.call('SISMEMBER', marker, ARGV[1]) == 1 then return 0 end
local kind, position = ARGV[2], ARGV[3]
local target_kind = redis.call('TYPE', target)['ok']
if target_kind ~= 'none' and target_kind ~= kind then
  return redis.error_reply(target .. ' is a ' .. target_kind .. ', not a ' .. kind)
end
local items = {}
for i = 5, #ARGV do items[#items + 1] = ARGV[i] end
for i = 1, #items, 1000 do
  local last = math.min(i + 999, #items)
  if kind == 'zset' then
    local pairs = {}
    for j = i, last, 2 do pairs[#pairs + 1] = items[j + 1]; pairs[#pairs + 1] = items[j] end
    redis.call('ZADD', target, unpack(pairs))
  elseif position == 'producer_end' then
    local reversed = {}
    for j = last, i, -1 do reversed[#reversed + 1] = items[j] end
    redis.call('LPUSH', target, unpack(reversed))
  else
    redis.call('RPUSH', target, unpack(items, i, last))
  end
end
redis.call('SADD', marker, ARGV[1])
redis.call('EXPIRE', marker, ARGV[4])
return 1
"""


@cache
def slot_tag(slot: int) -> str:
    """A short string that hashes to ``slot``, so a ``{tag}`` key lands in that slot."""
    n = 0
    while key_slot(str(n).encode()) != slot:
        n += 1
    return str(n)


def marker_key(key: str) -> str:
    """The marker set in the same slot as ``key``."""
    return f"opsloop:moves:{{{slot_tag(key_slot(key.encode()))}}}"


class SlotMove:
    """Moves batches from ``source`` to ``target`` through the journal; one instance per run."""

    def __init__(self, client: RedisCluster, journal: MoveJournal, redis_id: str) -> None:
        self.client = client
        self.journal = journal
        self.redis_id = redis_id
        self.peek_script = client.register_script(_PEEK)
        self.take_script = client.register_script(_TAKE)
        self.put_script = client.register_script(_PUT)

    async def peek(self, source: str, wanted: int, batch: int, position: str) -> tuple[str, int, int, list[bytes]]:
        kind, size, n, *items = await self.peek_script(keys=[source], args=[wanted, batch, position])
        return kind.decode() if isinstance(kind, bytes) else kind, int(size), int(n), items

    async def move(self, source: str, target: str, wanted: int, batch: int, position: str) -> int | None:
        """Move the next batch; the number moved, 0 when the source is empty, None when it changed first."""
        kind, _, n, items = await self.peek(source, wanted, batch, position)
        if not items:
            return 0
        move = Move(uuid.uuid4().hex, self.redis_id, source, target, kind, position, items)
        await self.journal.journal_move(move, time.time())
        taken = await self.take_script(
            keys=[source, marker_key(source)], args=[move.id, n, batch, position, MARKER_TTL, *items]
        )
        if not taken:
            await self.journal.finish_move(move.id, "aborted", time.time())
            return None
        await self._put(move)
        await self._finish(move)
        return len(items) // 2 if kind == "zset" else len(items)

    async def _put(self, move: Move) -> None:
        await self.put_script(
            keys=[move.target, marker_key(move.target)],
            args=[move.id, move.kind, move.position, MARKER_TTL, *move.items],
        )

    async def _finish(self, move: Move, state: str = "done") -> None:
        await self.journal.finish_move(move.id, state, time.time())
        # Only after the journal says finished: a marker removed earlier could make settle PUT twice.
        await self.client.srem(marker_key(move.source), move.id)
        await self.client.srem(marker_key(move.target), move.id)

    async def settle(self) -> int:
        """Finish every batch a crash left pending on this Redis; returns how many were settled."""
        pending = await self.journal.pending_moves(self.redis_id)
        for move in pending:
            if await self.client.sismember(marker_key(move.target), move.id):
                await self._finish(move)  # it arrived
            elif await self.client.sismember(marker_key(move.source), move.id):
                await self._put(move)  # it left the source but never arrived
                await self._finish(move)
            else:
                await self._finish(move, "aborted")  # it never left the source
            log.warning("settled an interrupted move", extra={"move": move.id, "source": move.source})
        return len(pending)
