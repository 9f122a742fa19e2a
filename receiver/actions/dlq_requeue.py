"""``dlq_requeue``: move items from a dead-letter queue back to the queue they failed from.

Queue convention: producers LPUSH, consumers BRPOP/RPOP, so a list's oldest item is at its right end,
and a DLQ filled the same way holds its oldest failure at the right end too. Moving happens in a Lua
script, one batch per call, so every item is moved atomically: it is in the DLQ or in the queue, never in
both or neither.

- ``consumer_end`` (default): the ``max_items`` oldest DLQ items go to the queue's consuming (right)
  end, ahead of waiting work, oldest nearest the end, so they are retried next in their original order.
  Each batch takes the newest items of that window, so later (older) batches land nearer the end:
  the moved items still waiting are always in age order, even while consumers pop between batches.
  Each batch costs O(window) inside Redis, so keep ``max_items`` in the thousands.
- ``producer_end``: the oldest items are LMOVEd to the producing (left) end, rejoining the line behind
  waiting work as if produced again; order holds as well.
- Sorted sets (score = time or priority) move lowest score first, keeping their scores.

Streams and other types are refused with an error result: re-adding stream entries would change their
IDs and consumer-group state, which has no single right answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from opsloop.receiver.actions.base import ActionResult, Progress
from opsloop.receiver.actions.config import DlqRequeueConfig
from opsloop.receiver.actions.placeholders import fill
from opsloop.receiver.actions.redis_action import RedisAction
from opsloop.receiver.actions.slot_move import SlotMove
from opsloop.receiver.store import MoveJournal
from redis.asyncio import RedisCluster
from redis.crc import key_slot

log = logging.getLogger(__name__)
MAX_CHANGED = 10
"""Batches in a row that consumers changed before they could be taken, before giving up for this run."""

# KEYS: source, target. ARGV: wanted, batch, position, count_only ("1": report, change nothing).
# Returns {moved (or would move), source size before the call, source type}.
_MOVE = """
local source, target = KEYS[1], KEYS[2]
local wanted, batch, position = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local kind = redis.call('TYPE', source)['ok']
if kind == 'none' then return {0, 0, kind} end
if kind ~= 'list' and kind ~= 'zset' then
  return redis.error_reply('dlq_requeue moves lists and sorted sets; ' .. source .. ' is a ' .. kind)
end
local target_kind = redis.call('TYPE', target)['ok']
if target_kind ~= 'none' and target_kind ~= kind then
  return redis.error_reply(source .. ' is a ' .. kind .. ' but ' .. target .. ' is a ' .. target_kind)
end
local size
if kind == 'list' then size = redis.call('LLEN', source) else size = redis.call('ZCARD', source) end
local n = math.min(wanted, size)
if ARGV[4] == '1' then return {n, size, kind} end
local k = math.min(batch, n)
local function rpush(key, items)
  for i = 1, #items, 1000 do
    redis.call('RPUSH', key, unpack(items, i, math.min(i + 999, #items)))
  end
end
if kind == 'zset' then
  local popped = redis.call('ZPOPMIN', source, k)
  for i = 1, #popped, 2 do redis.call('ZADD', target, popped[i + 1], popped[i]) end
elseif position == 'producer_end' then
  for _ = 1, k do redis.call('LMOVE', source, target, 'RIGHT', 'LEFT') end
else
  -- the window is the n oldest items (right end); move its k newest, keep the older ones in place
  local older = {}
  if n > k then older = redis.call('LRANGE', source, k - n, -1) end
  local moving = redis.call('LRANGE', source, -n, k - n - 1)
  redis.call('LTRIM', source, 0, -n - 1)
  rpush(source, older)
  rpush(target, moving)
end
return {k, size, kind}
"""


class DlqRequeueAction(RedisAction[DlqRequeueConfig]):
    type = "dlq_requeue"
    journal: MoveJournal | None = None

    async def use_journal(self, journal: MoveJournal) -> None:
        """Journal moves between cluster slots in the receiver's store, and settle what a crash left."""
        self.journal = journal
        if not self.cluster:
            return
        try:
            async with self.connect() as client:
                assert isinstance(client, RedisCluster)
                await SlotMove(client, journal, self.redis_id).settle()
        except self.failures as exc:  # Redis down at startup: the next run of the action settles them
            log.warning("cannot settle interrupted moves yet", extra={"error": str(exc)})

    async def _run(self, values: Mapping[str, str], dry_run: bool, progress: Progress) -> ActionResult:
        cfg = self.config
        source, target = fill(cfg.from_, values), fill(cfg.to, values)
        route = f"{source} -> {target}"
        if source == target:
            return ActionResult(False, f"refusing to move {source} onto itself", dry_run)
        if self.cluster and key_slot(source.encode()) != key_slot(target.encode()):
            return await self._journalled(source, target, dry_run, progress)
        async with self.connect() as client:
            move = client.register_script(_MOVE)
            if dry_run:
                count, size, kind = await move(keys=[source, target], args=[cfg.max_items, 0, cfg.position, 1])
                where = "" if kind == b"zset" else f" at the {cfg.position.replace('_', ' ')}"
                return ActionResult(True, f"would move {count} of {size} items {route}{where}", True)
            loop = asyncio.get_running_loop()
            started, moved, left = loop.time(), 0, 0
            while moved < cfg.max_items:
                if cfg.rate is not None and moved:
                    await asyncio.sleep(max(0.0, started + moved / cfg.rate - loop.time()))
                count, size, _ = await move(
                    keys=[source, target], args=[cfg.max_items - moved, cfg.batch, cfg.position, 0]
                )
                moved, left = moved + count, size - count
                progress.note = f"moved {moved} items {route}"
                if count == 0:
                    break
        remaining = f" ({left} left, max_items {cfg.max_items} reached)" if left else ""
        return ActionResult(True, f"moved {moved} items {route}{remaining}")

    async def _journalled(self, source: str, target: str, dry_run: bool, progress: Progress) -> ActionResult:
        """Different cluster slots: batch by batch through the store's journal (see ``slot_move``)."""
        cfg = self.config
        route = f"{source} -> {target}"
        if self.journal is None:
            return ActionResult(False, f"{route} spans two cluster slots and needs the receiver's store", dry_run)
        async with self.connect() as client:
            assert isinstance(client, RedisCluster)
            mover = SlotMove(client, self.journal, self.redis_id)
            await mover.settle()
            if dry_run:
                kind, size, n, _ = await mover.peek(source, cfg.max_items, cfg.max_items, cfg.position)
                where = "" if kind == "zset" else f" at the {cfg.position.replace('_', ' ')}"
                return ActionResult(True, f"would move {n} of {size} items {route}{where} (journalled)", True)
            loop = asyncio.get_running_loop()
            started, moved, changed = loop.time(), 0, 0
            while moved < cfg.max_items and changed < MAX_CHANGED:
                if cfg.rate is not None and moved:
                    await asyncio.sleep(max(0.0, started + moved / cfg.rate - loop.time()))
                count = await mover.move(source, target, cfg.max_items - moved, cfg.batch, cfg.position)
                if count == 0:
                    break
                if count is None:  # consumers changed the DLQ between look and take: look again
                    changed += 1
                    continue
                moved += count
                progress.note = f"moved {moved} items {route}"
            _, left, _, _ = await mover.peek(source, 0, 0, cfg.position)
        remaining = f" ({left} left, max_items {cfg.max_items} reached)" if left and moved >= cfg.max_items else ""
        return ActionResult(True, f"moved {moved} items {route}{remaining} (journalled)")
