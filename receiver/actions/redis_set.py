"""``redis_set``: SET a key with an expiry, such as a feature flag or a maintenance switch.

The TTL is required so that a switch flipped by automation cannot outlive the incident by accident.
"""

from __future__ import annotations

from collections.abc import Mapping

from opsloop.receiver.actions.base import ActionResult, Progress, seconds
from opsloop.receiver.actions.config import RedisSetConfig
from opsloop.receiver.actions.placeholders import fill
from opsloop.receiver.actions.redis_action import RedisAction


class RedisSetAction(RedisAction[RedisSetConfig]):
    type = "redis_set"

    async def _run(self, values: Mapping[str, str], dry_run: bool, progress: Progress) -> ActionResult:
        key, value = fill(self.config.key, values), fill(self.config.value, values)
        what = f"{key} = {value!r} with a ttl of {seconds(self.config.ttl)}"
        if dry_run:
            return ActionResult(True, f"would set {what}", True)
        async with self.connect() as client:
            await client.set(key, value, px=max(1, round(self.config.ttl * 1000)))
        return ActionResult(True, f"set {what}")
