"""One Redis server as one source: every reader's commands go out in one pipeline, sent in slices.

Readers (queues, DLQs, workers, cache) each own one concern. ``prepare`` does their cached discovery
(SCAN, TYPE) with its own round trips only when due; ``plan`` queues their per-scrape commands on the
shared pipeline and returns a parser for their slice of the replies: a function of all of them, or a
``ReplyReader`` that takes each reply as its slice comes back. A WRONGTYPE or other per-command error
reaches only the parser of the key it concerns; a connection error fails the whole source.
"""

from __future__ import annotations

import asyncio
import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from opsloop.exporter.sources.base import PartialFailure, Sample, Series
from opsloop.exporter.sources.redis_cluster import ClusterClient, ClusterNodes, ClusterPipeline
from opsloop.exporter.sources.redis_discovery import KeyDiscovery
from opsloop.exporter.sources.redis_packing import pack_with_hiredis
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from opsloop.metric_contract import OWN_HITS, OWN_MISSES
from opsloop.redis_connect import RedisTarget, node_client, resolve_target
from opsloop.redis_connect import connect as redis_connect

if TYPE_CHECKING:
    from opsloop.exporter.config import RedisConfig

Parser = Callable[[Sequence[object]], Iterable[Series]]
SLICE_ARGS = 2_500
"""Command arguments per round trip: two key-script calls of 1,000 keys (1,005 arguments each). Once
Redis answers a slice's last command, the exporter still reads the slices in flight, so small slices
leave the least to do after Redis is done: at 100,000 keys, 50-80 ms from Redis' last script to the
read's end against 90-135 ms with slices of ten calls. Slices also bound what redis-py keeps packed
for a pipeline until its last reply is in (2-3 MiB more at the peak with 100,000 keys sent at once)."""
IN_FLIGHT = 2
"""Slices sent at once, each on a connection of its own: Redis runs one slice's scripts while the
exporter reads the replies of the other. One at a time, each side waited for the other; three in flight
were no faster than two. On a cluster each slice goes to every primary at once."""


@dataclass
class KeyLookups:
    """The exporter's own key reads on one Redis.

    Redis counts every LLEN, EXISTS or HGETALL the exporter sends as a keyspace hit or miss, so a
    cache hit ratio from INFO would include the exporter's own work; the rules subtract these.
    """

    hits: int = 0
    misses: int = 0

    def add(self, hits: int, misses: int) -> None:
        self.hits += hits
        self.misses += misses


class ReplyReader(ABC):
    """A parser that takes each reply as soon as its slice is back, so its work overlaps Redis' work:
    for readers with many replies (a script call per 1,000 queue keys)."""

    @abstractmethod
    def take(self, index: int, reply: object) -> None:
        """Reply ``index`` of the reader's commands; slices may come back in any order."""

    @abstractmethod
    def series(self) -> Iterable[Series]:
        """What the replies say, once every one has been taken."""


class RedisReader(Protocol):
    async def prepare(self, client: Redis) -> None:
        """Refresh cached discovery if due (may cost round trips; usually costs none)."""
        ...

    def plan(self, pipe: Pipeline) -> Parser | ReplyReader:
        """Queue this scrape's commands on ``pipe``; return the parser for their replies, in order."""
        ...

    def discoveries(self) -> list[KeyDiscovery]:
        """The reader's pattern discoveries, whose background scans the source bounds and stops."""
        ...


def connect(config: RedisConfig, max_connections: int) -> Redis | ClusterClient:
    """A client that fails fast: no internal retries (the collector's breaker paces reconnects).

    A cluster gets a ``ClusterClient``: the readers' commands then go out as one pipeline per primary.
    """
    target = resolve_target(config, config.url, config.secret("password"))
    options: dict[str, Any] = {
        "decode_responses": True,
        "encoding_errors": "replace",
        "socket_connect_timeout": config.connect_timeout,
        "retry": Retry(NoBackoff(), 0),
        "max_connections": max_connections,
        "client_name": "opsloop-exporter",
    }
    if target.mode == "cluster":
        nodes = ClusterNodes(target.cluster_nodes(), lambda h, p: _node(target, h, p, options), config.node_timeout)
        return ClusterClient(nodes)
    if target.mode == "sentinel":
        # A failover leaves no socket to fail fast on, only silence: bound every reply.
        options["socket_timeout"] = config.node_timeout
    client = redis_connect(target, **options)
    assert isinstance(client, Redis)
    pack_with_hiredis(client.connection_pool)
    return client


def _node(target: RedisTarget, host: str, port: int, options: dict[str, Any]) -> Redis:
    client = node_client(target, host, port, **options)
    pack_with_hiredis(client.connection_pool)
    return client


def slices(stack: Sequence[tuple[tuple[Any, ...], Any]]) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of each run of commands that together take at most SLICE_ARGS arguments."""
    start = 0
    while start < len(stack):
        end, size = start + 1, len(stack[start][0])
        while end < len(stack) and size + len(stack[end][0]) <= SLICE_ARGS:
            size += len(stack[end][0])
            end += 1
        yield start, end
        start = end


Arrived = Callable[[int, list[object]], None]
"""Told the position of a slice's first command and the slice's replies, as soon as they are back."""


async def execute_in_slices(
    client: Redis | ClusterClient, pipe: Pipeline | ClusterPipeline, arrived: Arrived, in_flight: int = 1
) -> None:
    """Send the pipeline's commands a slice at a time on ``in_flight`` connections; no reply is kept
    here, so a reader that takes its replies as they come holds no more than a slice of them."""
    stack = pipe.command_stack
    pending = slices(stack)  # shared: each sender takes the next slice no one has sent
    failed = False

    async def send() -> None:
        nonlocal failed
        part = client.pipeline(transaction=False)
        try:
            for start, end in pending:
                if failed:  # another sender failed: the read fails, so nothing more is worth sending
                    return
                part.command_stack = stack[start:end]
                arrived(start, await part.execute(raise_on_error=False))
        except BaseException:
            failed = True
            raise

    others = [asyncio.ensure_future(send()) for _ in range(in_flight - 1)]
    for other in others:  # its error is raised below, or not at all once the read has failed
        other.add_done_callback(_retrieved)
    try:
        await send()  # in the read's own task: a read that is cancelled stops at once, as one round trip would
        if others:
            await asyncio.wait(others)
            for other in others:
                other.result()
    finally:
        for other in others:
            other.cancel()


def _retrieved(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()


class RedisSource:
    def __init__(self, config: RedisConfig, readers: list[RedisReader], lookups: KeyLookups) -> None:
        self.name = f"redis/{config.name}"
        self.redis_name = config.name
        self.readers = readers
        self.lookups = lookups
        self.discoveries = [d for reader in readers for d in reader.discoveries()]
        # One connection per background rescan besides the scrape's, so a rescan never starves a scrape.
        self.client = connect(config, max_connections=IN_FLIGHT + 1 + len(self.discoveries))

    async def read(self) -> Iterable[Series]:
        if isinstance(self.client, ClusterClient):
            await self.client.ensure_slots()
        for reader in self.readers:
            await reader.prepare(self.client)  # type: ignore[arg-type]
        pipe = self.client.pipeline(transaction=False)
        plans: list[tuple[int, int, Parser | ReplyReader]] = []
        for reader in self.readers:
            start = len(pipe.command_stack)
            parse = reader.plan(pipe)
            plans.append((start, len(pipe.command_stack), parse))
        replies: list[object] = [None] * len(pipe.command_stack)  # those of plain parsers only

        def arrived(first: int, got: list[object]) -> None:
            for start, end, parse in plans:
                low, high = max(first, start), min(first + len(got), end)
                if low >= high:  # none of this reader's commands is in the slice
                    continue
                if not isinstance(parse, ReplyReader):
                    replies[low:high] = got[low - first : high - first]
                    continue
                for index in range(low, high):
                    parse.take(index - start, got[index - first])

        await execute_in_slices(self.client, pipe, arrived, IN_FLIGHT)
        # Lazy: 10,000 keys' samples go straight into their families instead of into a list first.
        parsed = itertools.chain.from_iterable(
            parse.series() if isinstance(parse, ReplyReader) else parse(replies[start:end])
            for start, end, parse in plans
        )
        samples = itertools.chain(parsed, self._own_lookups())
        if not isinstance(self.client, ClusterClient):
            return samples
        nodes = self.client.nodes
        down = nodes.down()
        if down:  # partial: the reachable nodes' keys are published, the source is reported down
            partial = [*samples, *nodes.samples(self.redis_name)]
            raise PartialFailure(partial, "cluster nodes unreachable: " + ", ".join(down))
        return itertools.chain(samples, nodes.samples(self.redis_name))

    def _own_lookups(self) -> Iterator[Sample]:
        """Last in the chain: the parsers above have counted this scrape's lookups by then."""
        yield Sample(OWN_HITS, (self.redis_name,), float(self.lookups.hits))
        yield Sample(OWN_MISSES, (self.redis_name,), float(self.lookups.misses))

    async def close(self) -> None:
        for discovery in self.discoveries:
            discovery.close()
        await self.client.aclose()
