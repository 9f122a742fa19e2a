"""One Redis server as one source: every reader's commands go out in a single pipelined round trip.

Readers (queues, DLQs, workers, cache) each own one concern. ``prepare`` does their cached discovery
(SCAN, TYPE) with its own round trips only when due; ``plan`` queues their per-scrape commands on the
shared pipeline and returns a parser for their slice of the replies. A WRONGTYPE or other per-command
error reaches only the parser of the key it concerns; a connection error fails the whole source.
"""

from __future__ import annotations

import itertools
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
SLICE_ARGS = 10_000
"""Command arguments per round trip (ten key-script calls of 1,000 keys): redis-py keeps a pipeline's
packed commands until its last reply is in, which at 100,000 keys sent at once was 2-3 MiB more at the
scrape's peak; ten round trips instead of one cost about a millisecond on a local network."""


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


class RedisReader(Protocol):
    async def prepare(self, client: Redis) -> None:
        """Refresh cached discovery if due (may cost round trips; usually costs none)."""
        ...

    def plan(self, pipe: Pipeline) -> Parser:
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


async def execute_in_slices(pipe: Pipeline | ClusterPipeline) -> list[object]:
    """The pipeline's replies in order, its commands sent SLICE_ARGS arguments at a time."""
    stack = pipe.command_stack
    replies: list[object] = []
    start = 0
    while start < len(stack):
        end, size = start + 1, len(stack[start][0])
        while end < len(stack) and size + len(stack[end][0]) <= SLICE_ARGS:
            size += len(stack[end][0])
            end += 1
        pipe.command_stack = stack[start:end]
        replies += await pipe.execute(raise_on_error=False)
        start = end
    return replies


class RedisSource:
    def __init__(self, config: RedisConfig, readers: list[RedisReader], lookups: KeyLookups) -> None:
        self.name = f"redis/{config.name}"
        self.redis_name = config.name
        self.readers = readers
        self.lookups = lookups
        self.discoveries = [d for reader in readers for d in reader.discoveries()]
        # One connection per background rescan plus the scrape's own, so a rescan never starves a scrape.
        self.client = connect(config, max_connections=2 + len(self.discoveries))

    async def read(self) -> Iterable[Series]:
        if isinstance(self.client, ClusterClient):
            await self.client.ensure_slots()
        for reader in self.readers:
            await reader.prepare(self.client)  # type: ignore[arg-type]
        pipe = self.client.pipeline(transaction=False)
        plans: list[tuple[int, int, Parser]] = []
        for reader in self.readers:
            start = len(pipe.command_stack)
            parse = reader.plan(pipe)
            plans.append((start, len(pipe.command_stack), parse))
        replies = await execute_in_slices(pipe)
        # Lazy: 10,000 keys' samples go straight into their families instead of into a list first.
        parsed = itertools.chain.from_iterable(parse(replies[start:end]) for start, end, parse in plans)
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
