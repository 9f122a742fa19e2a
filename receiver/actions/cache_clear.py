"""``cache_clear``: delete the keys matching a pattern with SCAN + UNLINK, never KEYS or FLUSH*.

SCAN walks the keyspace in small steps so Redis keeps serving, UNLINK frees memory in the background,
and ``max_keys`` bounds one run. Label values are glob-escaped, so a value such as ``*`` matches only a
literal star and cannot widen the pattern.
"""

from __future__ import annotations

from collections.abc import Mapping

from opsloop.receiver.actions.base import ActionResult, Progress
from opsloop.receiver.actions.config import GLOB_SPECIAL, CacheClearConfig
from opsloop.receiver.actions.placeholders import fill
from opsloop.receiver.actions.redis_action import RedisAction


def escape_glob(value: str) -> str:
    """Make a value match itself literally inside a Redis MATCH pattern."""
    return "".join(f"\\{ch}" if ch in GLOB_SPECIAL else ch for ch in value)


class CacheClearAction(RedisAction[CacheClearConfig]):
    type = "cache_clear"

    async def _run(self, values: Mapping[str, str], dry_run: bool, progress: Progress) -> ActionResult:
        cfg = self.config
        pattern = fill(cfg.pattern, values, quote=escape_glob)
        seen: set[bytes] = set()
        unlinked, cursor, capped = 0, 0, False
        async with self.connect() as client:
            while True:
                cursor, keys = await client.scan(cursor=cursor, match=pattern, count=cfg.batch)
                fresh = [key for key in dict.fromkeys(keys) if key not in seen]
                room = cfg.max_keys - len(seen)
                taken, capped = fresh[:room], len(fresh) > room
                seen.update(taken)
                if taken and not dry_run:
                    unlinked += await client.unlink(*taken)
                    progress.note = f"unlinked {unlinked} keys matching {pattern}"
                if cursor == 0:
                    break
                if len(seen) >= cfg.max_keys:
                    capped = True
                    break
        limit = f"; stopped at max_keys {cfg.max_keys}, more may remain" if capped else ""
        if dry_run:
            return ActionResult(True, f"would unlink {len(seen)} keys matching {pattern}{limit}", True)
        return ActionResult(True, f"unlinked {unlinked} keys matching {pattern}{limit}")
