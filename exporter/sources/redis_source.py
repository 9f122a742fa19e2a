"""One Redis server as one source: every reader's commands go out in a single pipelined round trip.

Readers (queues, DLQs, workers, cache) each own one concern. ``prepare`` does their cached discovery
(SCAN, TYPE) with its own round trips only when due; ``plan`` queues their per-scrape commands on the
shared pipeline and returns a parser for their slice of the replies. A WRONGTYPE or other per-command
error reaches only the parser of the key it concerns; a connection error fails the whole source.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from exporter.config import RedisConfig
from exporter.sources.base import Sample

Parser = Callable[[Sequence[object]], Iterable[Sample]]


class RedisReader(Protocol):
    async def prepare(self, client: Redis) -> None:
        """Refresh cached discovery if due (may cost round trips; usually costs none)."""
        ...

    def plan(self, pipe: Pipeline) -> Parser:
        """Queue this scrape's commands on ``pipe``; return the parser for their replies, in order."""
        ...


def connect(config: RedisConfig) -> Redis:
    """A client that fails fast: no internal retries (the collector's breaker paces reconnects)."""
    return Redis.from_url(
        config.url,
        password=config.resolve_password(),
        decode_responses=True,
        encoding_errors="replace",
        socket_connect_timeout=config.connect_timeout,
        retry=Retry(NoBackoff(), 0),
        max_connections=4,
        client_name="opsloop-exporter",
    )


class RedisSource:
    def __init__(self, config: RedisConfig, readers: list[RedisReader]) -> None:
        self.name = f"redis/{config.name}"
        self.client = connect(config)
        self.readers = readers

    async def read(self) -> Iterable[Sample]:
        for reader in self.readers:
            await reader.prepare(self.client)
        pipe = self.client.pipeline(transaction=False)
        plans: list[tuple[int, int, Parser]] = []
        for reader in self.readers:
            start = len(pipe.command_stack)
            parse = reader.plan(pipe)
            plans.append((start, len(pipe.command_stack), parse))
        replies = await pipe.execute(raise_on_error=False) if pipe.command_stack else []
        # Lazy: 10,000 keys' samples go straight into their families instead of into a list first.
        return itertools.chain.from_iterable(parse(replies[start:end]) for start, end, parse in plans)

    async def close(self) -> None:
        await self.client.aclose()
