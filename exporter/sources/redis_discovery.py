"""SCAN discovery of key patterns, cached and refreshed on an interval instead of on every scrape.

Memory: the key names are most of what a pattern with 100,000 keys keeps (about 7 MiB). A scan
collects into a list (a set would add 4 MiB for its table) and hands each key already listed the
string object the list holds, so a rescan never keeps two copies of the names alive.
"""

from __future__ import annotations

import asyncio
import logging
import operator
import time
from bisect import bisect_left
from itertools import compress, groupby, islice
from typing import TYPE_CHECKING

from opsloop.exporter.sources.base import Sample
from redis.asyncio import Redis

from opsloop.metric_contract import KEYS_TRUNCATED

if TYPE_CHECKING:
    from opsloop.exporter.config import RedisConfig

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
        found: list[str] = []
        listed = bytearray(len(self.keys))  # true where SCAN found a key of the current list again
        try:
            async with asyncio.timeout(SCAN_TIMEOUT):  # a hung scan must not block every later rescan
                await self._collect(client, found, listed)
        except Exception as exc:  # a failed rescan keeps the previous list; the error is reported
            self.last_error = str(exc) or type(exc).__name__
            log.warning("key discovery failed", extra={"pattern": self.pattern, "error": self.last_error})
            return
        _sort_unique(found)  # SCAN may return a key more than once
        truncated = len(found) > self.max_keys
        if truncated:
            del found[self.max_keys :]
            log.warning("key discovery truncated", extra={"pattern": self.pattern, "max_keys": self.max_keys})
        now = time.monotonic()
        # Listed keys this scan did not find, with when one last did: only vanished keys carry a time,
        # so 100,000 found keys cost no dict entry each.
        missing = compress(self.keys, map(operator.not_, listed))
        last_seen = self._vanished.get
        vanished = {k: last_seen(k, self.scanned_at or now) for k in missing}
        room = self.max_keys - len(found)  # vanished keys never push found ones past the cap
        kept = sorted(k for k, seen in vanished.items() if now - seen <= self.forget_after)[: max(room, 0)]
        self._vanished = {k: vanished[k] for k in kept}
        if kept:
            found += kept
            found.sort()
        self.keys, self.truncated = found, truncated
        self.scanned_at = now

    async def _collect(self, client: Redis, found: list[str], listed: bytearray) -> None:
        """SCAN until done or one key past the cap (which tells that the cap was hit)."""
        keys = self.keys  # sorted; replaced by _scan, never changed in place
        async for key in client.scan_iter(match=self.pattern, count=SCAN_COUNT):
            i = bisect_left(keys, key)
            if i < len(keys) and keys[i] == key:
                key, listed[i] = keys[i], True  # the listed object: the scanned copy is freed at once
            found.append(key)
            if len(found) > self.max_keys:
                _sort_unique(found)
                if len(found) > self.max_keys:
                    return

    def close(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()

    def samples(self) -> list[Sample]:
        return [Sample(KEYS_TRUNCATED, (self.redis_name, self.pattern), 1.0 if self.truncated else 0.0)]


def _sort_unique(keys: list[str]) -> None:
    """Sort ``keys`` in place and drop repeats (a set would cost its table)."""
    keys.sort()
    if any(map(operator.eq, keys, islice(keys, 1, None))):
        keys[:] = [key for key, _ in groupby(keys)]
