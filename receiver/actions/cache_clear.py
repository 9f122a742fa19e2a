"""``cache_clear``: delete the keys matching a pattern with SCAN + UNLINK, never KEYS or FLUSH*.

SCAN walks the keyspace in small steps so Redis keeps serving, UNLINK frees memory in the background,
and ``max_keys`` bounds one run. Label values are glob-escaped, so a value such as ``*`` matches only a
literal star and cannot widen the pattern.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from opsloop.receiver.actions.base import ActionResult, Progress
from opsloop.receiver.actions.config import GLOB_SPECIAL, CacheClearConfig
from opsloop.receiver.actions.placeholders import fill
from opsloop.receiver.actions.redis_action import RedisAction
from redis.asyncio import Redis, RedisCluster


def escape_glob(value: str) -> str:
    """Make a value match itself literally inside a Redis MATCH pattern."""
    return "".join(f"\\{ch}" if ch in GLOB_SPECIAL else ch for ch in value)


class CacheClearAction(RedisAction[CacheClearConfig]):
    type = "cache_clear"

    async def _run(self, values: Mapping[str, str], dry_run: bool, progress: Progress) -> ActionResult:
        cfg = self.config
        pattern = fill(cfg.pattern, values, quote=escape_glob)
        seen: set[bytes] = set()
        unlinked, capped = 0, False
        async with self.connect() as client:
            async for keys, finished in self._scan(client, pattern):
                fresh = [key for key in dict.fromkeys(keys) if key not in seen]
                room = cfg.max_keys - len(seen)
                taken, capped = fresh[:room], len(fresh) > room
                seen.update(taken)
                if taken and not dry_run:
                    unlinked += await client.unlink(*taken)  # a cluster client splits it by slot
                    progress.note = f"unlinked {unlinked} keys matching {pattern}"
                if len(seen) >= cfg.max_keys and not finished:
                    capped = True
                    break
        limit = f"; stopped at max_keys {cfg.max_keys}, more may remain" if capped else ""
        if dry_run:
            return ActionResult(True, f"would unlink {len(seen)} keys matching {pattern}{limit}", True)
        return ActionResult(True, f"unlinked {unlinked} keys matching {pattern}{limit}")

    async def _scan(self, client: Redis | RedisCluster, pattern: str) -> AsyncIterator[tuple[list[bytes], bool]]:
        """One SCAN page at a time, and whether it was the last; on a cluster every primary in turn."""
        nodes = client.get_primaries() if isinstance(client, RedisCluster) else [None]
        for n, node in enumerate(nodes, 1):
            options = {} if node is None else {"target_nodes": node}
            cursor = None
            while cursor != 0:
                cursor, keys = await client.scan(cursor=cursor or 0, match=pattern, count=self.config.batch, **options)
                if isinstance(cursor, dict):  # a cluster client answers the cursor as {node: cursor}
                    (cursor,) = cursor.values()
                yield keys, cursor == 0 and n == len(nodes)
