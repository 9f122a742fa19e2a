"""SCAN discovery of key patterns, cached and refreshed on an interval instead of on every scrape."""

from __future__ import annotations

import asyncio
import logging
import time

from opsloop.exporter.config import RedisConfig
from opsloop.exporter.sources.base import Sample
from redis.asyncio import Redis

from opsloop.metric_contract import KEYS_TRUNCATED

log = logging.getLogger(__name__)

SCAN_COUNT = 1000
SCAN_TIMEOUT = 60.0


class KeyDiscovery:
    """The keys matching ``pattern``, at most ``max_keys``, rescanned every ``interval`` seconds.

    The first call waits for a scan; later calls return the cached list at once and start a
    background rescan when it is older than ``interval``. A failed rescan keeps the previous list.
    A key a rescan no longer finds stays listed for ``forget_after`` seconds: Redis deletes a list
    when it empties, and a queue that drops out instead of reading 0 breaks ``delta()`` and
    ``predict_linear()`` and hides the next burst.
    """

    def __init__(self, redis: RedisConfig, pattern: str) -> None:
        self.redis_name = redis.name
        self.pattern = pattern
        self.max_keys = redis.max_keys_per_pattern
        self.interval = redis.discovery_interval
        self.forget_after = redis.forget_after
        self.keys: list[str] = []
        self._vanished: dict[str, float] = {}
        """Listed keys the latest scan did not find, with when one last did (the others were found then)."""
        self.truncated = False
        self.scanned_at: float | None = None
        self.last_error = ""
        self._refresh: asyncio.Task[None] | None = None

    async def current(self, client: Redis) -> list[str]:
        due = self.scanned_at is None or time.monotonic() - self.scanned_at >= self.interval
        if due and (self._refresh is None or self._refresh.done()):
            self._refresh = asyncio.create_task(self._scan(client))
        if self.scanned_at is None:
            assert self._refresh is not None
            await asyncio.shield(self._refresh)
            if self.scanned_at is None:
                raise ConnectionError(f"discovery of {self.pattern!r} failed: {self.last_error}")
        return self.keys

    async def _scan(self, client: Redis) -> None:
        found: set[str] = set()  # SCAN may return a key more than once
        try:
            async with asyncio.timeout(SCAN_TIMEOUT):  # a hung scan must not block every later rescan
                await self._collect(client, found)
        except Exception as exc:  # a failed rescan keeps the previous list; the error is reported
            self.last_error = str(exc) or type(exc).__name__
            log.warning("key discovery failed", extra={"pattern": self.pattern, "error": self.last_error})
            return
        truncated = len(found) > self.max_keys
        if truncated:
            found = set(sorted(found)[: self.max_keys])
            log.warning("key discovery truncated", extra={"pattern": self.pattern, "max_keys": self.max_keys})
        now = time.monotonic()
        # Only vanished keys carry a time: 100,000 found keys cost no dict entry each.
        vanished = {k: seen for k, seen in self._vanished.items() if k not in found}
        if self.scanned_at is not None:
            vanished.update((k, self.scanned_at) for k in self.keys if k not in found and k not in vanished)
        room = self.max_keys - len(found)  # vanished keys never push found ones past the cap
        kept = sorted(k for k, seen in vanished.items() if now - seen <= self.forget_after)[: max(room, 0)]
        self._vanished = {k: vanished[k] for k in kept}
        self.keys, self.truncated = sorted([*found, *kept]), truncated
        self.scanned_at = now

    async def _collect(self, client: Redis, found: set[str]) -> None:
        """SCAN until done or one key past the cap (which tells that the cap was hit)."""
        async for key in client.scan_iter(match=self.pattern, count=SCAN_COUNT):
            found.add(key)
            if len(found) > self.max_keys:
                return

    def close(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()

    def samples(self) -> list[Sample]:
        return [Sample(KEYS_TRUNCATED, (self.redis_name, self.pattern), 1.0 if self.truncated else 0.0)]
