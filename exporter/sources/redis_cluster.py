"""Reading a Redis Cluster with the same readers as a standalone Redis: one pipeline per primary.

``ClusterClient`` and ``ClusterPipeline`` stand in for redis-py's client and pipeline in the readers'
``prepare``/``plan``: SCAN runs on every primary, and the queued commands are routed by the slot of their
keys, so each primary receives one pipeline per scrape.

- A per-key script (``register_per_key_script``: an array of two header values, then two values per
  key) is split by owner node and sent in the ``allow-cross-slot-keys`` form, reading the node's keys of any slot in one
  call; the replies are merged back in key order. A node that no longer holds a key (resharding)
  refuses the whole call, and those keys are read again one by one, following ``MOVED`` and ``ASK``:
  a value is either read where the key lives or not published, never read as 0 from the wrong node.
- ``INFO`` goes to every primary and its counters are summed; ``EXISTS`` is split and summed.
- A node that fails or misses ``node_timeout`` costs only its own keys: its commands answer
  ``NodeUnreachable``, the per-key script answers ``unread`` for its keys, and the source reports the node in
  ``opsloop_redis_node_up`` / ``opsloop_redis_node_errors_total``.
"""

from __future__ import annotations

import asyncio
import logging
from array import array
from binascii import crc_hqx
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opsloop.exporter.sources.base import Sample
from redis.asyncio import Redis
from redis.commands.core import AsyncCoreCommands
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterCrossSlotError,
    ClusterDownError,
    MovedError,
    RedisError,
    ResponseError,
    TryAgainError,
)

from opsloop.metric_contract import REDIS_NODE_ERRORS, REDIS_NODE_UP

log = logging.getLogger(__name__)

SLOTS = 16384
UNREAD = ("unread", "0\t")
"""The per-key script's two values for a key whose node could not be read this scrape: a type and a line."""
_PER_KEY_SCRIPTS: dict[str, tuple[str, int]] = {}
MAX_REDIRECTS = 5
_COUNTING = frozenset({"EXISTS", "TOUCH", "UNLINK", "DEL"})
"""Multi-key commands whose replies are counts: split by slot, answers summed. Other multi-key commands
must name keys of one slot (a hash tag), as on any cluster client."""
_EVERY_PRIMARY = frozenset({"INFO", "DBSIZE"})
_SUBCOMMAND_KEY = frozenset({"XINFO", "OBJECT", "MEMORY"})
"""Commands whose key follows a subcommand (``XINFO GROUPS key``)."""


class NodeUnreachable(ConnectionError):
    """The reply of a command whose node failed; readers skip what it concerns."""


def register_per_key_script(script: str, fixed_args: int) -> None:
    """Declare ``script`` splittable by key: ``fixed_args`` ARGV first; it answers an array of two header
    counters (summed over the nodes), then two values per key.

    Its cluster form reads the keys from ARGV after the fixed ones, with the script flags that let one
    call read keys of several slots on the node that holds them all.
    """
    preamble = f"#!lua flags=no-writes,allow-cross-slot-keys\nlocal KEYS = {{unpack(ARGV, {fixed_args + 1})}}\n"
    _PER_KEY_SCRIPTS[script] = (preamble + script, fixed_args)


def _redirected(reply: object) -> bool:
    """A refusal that means "not here (now)": try again where the key lives."""
    if isinstance(reply, AskError | TryAgainError | ClusterCrossSlotError | ClusterDownError):
        return True
    return isinstance(reply, ResponseError) and "non local key" in str(reply)


@dataclass
class NodeState:
    errors: int = 0
    up: bool = True
    last_error: str = ""


@dataclass
class ClusterNodes:
    """The slot map and one client per node address; refreshed from any node that answers."""

    seeds: list[tuple[str, int]]
    client_for: Callable[[str, int], Redis]
    node_timeout: float
    slots: list[str | None] = field(default_factory=lambda: [None] * SLOTS)
    clients: dict[str, Redis] = field(default_factory=dict)
    states: dict[str, NodeState] = field(default_factory=dict)
    stale: bool = True
    _primaries: list[str] = field(default_factory=list)

    def client(self, address: str) -> Redis:
        if address not in self.clients:
            host, port = address.rsplit(":", 1)
            self.clients[address] = self.client_for(host, int(port))
        return self.clients[address]

    def primaries(self) -> list[str]:
        return self._primaries

    def _set_slots(self, slots: list[str | None]) -> None:
        self.slots, self.stale = slots, False
        self._primaries = sorted({a for a in slots if a is not None})

    def owner(self, key: str) -> str | None:
        return self.slots[key_slot(key.encode("utf-8", "surrogateescape"))]

    def owners(self, keys: Sequence[str]) -> list[str | None]:
        """``owner`` of each key; keys without a hash tag (most) are hashed without a Python call each."""
        if "{" in "".join(keys):  # a hash tag may decide the slot
            return [self.owner(key) for key in keys]
        slots = self.slots
        return [slots[crc_hqx(key.encode("utf-8", "surrogateescape"), 0) & (SLOTS - 1)] for key in keys]

    async def refresh(self) -> None:
        """Reload the slot map (CLUSTER SLOTS) from a known primary or a seed."""
        candidates = dict.fromkeys([*self.primaries(), *(f"{h}:{p}" for h, p in self.seeds)])
        errors: list[str] = []
        # Nodes that answered last time first: a hung node must not cost its timeout on every refresh.
        for address in sorted(candidates, key=lambda a: not self.states.get(a, NodeState()).up):
            try:
                async with asyncio.timeout(self.node_timeout):
                    ranges = await self.client(address).execute_command("CLUSTER SLOTS")
            except (RedisError, OSError, TimeoutError) as exc:
                errors.append(f"{address}: {exc or type(exc).__name__}")
                continue
            slots: list[str | None] = [None] * SLOTS
            for start, end, primary, *_ in ranges:
                slots[start : end + 1] = [f"{primary[0] or address.rsplit(':', 1)[0]}:{primary[1]}"] * (end - start + 1)
            self._set_slots(slots)
            return
        raise ConnectionError("no cluster node answered CLUSTER SLOTS: " + "; ".join(errors))

    def record(self, address: str, error: BaseException | None) -> None:
        state = self.states.setdefault(address, NodeState())
        state.up = error is None
        if error is not None:
            state.errors += 1
            state.last_error = str(error) or type(error).__name__
            self.stale = True  # a replica may have been promoted in its place

    def samples(self, redis_name: str) -> list[Sample]:
        out: list[Sample] = []  # the primaries of the current slot map: a replaced node drops out
        for address in self.primaries():
            state = self.states.setdefault(address, NodeState())
            out.append(Sample(REDIS_NODE_UP, (redis_name, address), 1.0 if state.up else 0.0))
            out.append(Sample(REDIS_NODE_ERRORS, (redis_name, address), float(state.errors)))
        return out

    def down(self) -> list[str]:
        return [a for a in self.primaries() if not self.states.get(a, NodeState()).up]

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.clients.values()), return_exceptions=True)


class ClusterClient:
    """The part of redis-py's client API the readers use, spread over every primary."""

    def __init__(self, nodes: ClusterNodes) -> None:
        self.nodes = nodes

    async def ensure_slots(self) -> None:
        if self.nodes.stale:
            await self.nodes.refresh()

    async def scan_iter(self, match: str, count: int) -> AsyncIterator[str]:
        """SCAN on every primary; a node that fails is reported and skipped, its keys keep their last state."""
        await self.ensure_slots()
        for address in self.nodes.primaries():
            try:
                async for key in self.nodes.client(address).scan_iter(match=match, count=count):
                    yield key
            except (RedisError, OSError) as exc:
                self.nodes.record(address, exc)
                log.warning("cluster node scan failed", extra={"node": address, "error": str(exc)})

    async def ping(self) -> bool:
        await self.ensure_slots()
        replies = await asyncio.gather(
            *(self.nodes.client(a).ping() for a in self.nodes.primaries()), return_exceptions=True
        )
        if all(isinstance(r, BaseException) for r in replies):
            raise ConnectionError(f"no cluster primary answered PING: {replies[0] if replies else 'no primaries'}")
        return True

    def pipeline(self, transaction: bool = False) -> ClusterPipeline:
        return ClusterPipeline(self.nodes)

    async def aclose(self) -> None:
        await self.nodes.aclose()


@dataclass
class _Part:
    """One command as sent to one node; ``index`` is its command's position in the caller's stack."""

    index: int
    address: str
    args: tuple[Any, ...]
    options: dict[str, Any]
    keys: Sequence[int] = ()  # per-key scripts: positions of the keys it carries (an array: no int objects)


class ClusterPipeline(AsyncCoreCommands):
    """Records commands like redis-py's pipeline; ``execute`` sends one pipeline per node concurrently."""

    def __init__(self, nodes: ClusterNodes) -> None:
        self.nodes = nodes
        self.command_stack: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def execute_command(self, *args: Any, **options: Any) -> ClusterPipeline:  # type: ignore[override]
        self.command_stack.append((args, options))
        return self

    async def execute(self, raise_on_error: bool = False) -> list[object]:
        if self.nodes.stale:
            await self.nodes.refresh()
        parts = [part for i, (args, options) in enumerate(self.command_stack) for part in self._route(i, args, options)]
        by_node: dict[str, list[_Part]] = defaultdict(list)
        for part in parts:
            by_node[part.address].append(part)
        sent = await asyncio.gather(*(self._send(address, node_parts) for address, node_parts in by_node.items()))
        replies: dict[int, object] = {}
        for node_parts, node_replies in zip(by_node.values(), sent, strict=True):
            replies.update(zip(map(id, node_parts), node_replies, strict=True))
            # The finished gather keeps its result lists: emptied, they leave ``replies`` the only
            # holder of the node replies, which merging frees command by command.
            node_replies.clear()
        await self._follow_redirects(parts, replies)
        by_command: dict[int, list[_Part]] = defaultdict(list)
        for part in parts:
            by_command[part.index].append(part)
        return [self._merge(args, by_command[i], replies) for i, (args, _) in enumerate(self.command_stack)]

    def _route(self, index: int, args: tuple[Any, ...], options: dict[str, Any]) -> list[_Part]:
        name = str(args[0]).upper()
        primaries = self.nodes.primaries()
        if name == "EVAL" and args[1] in _PER_KEY_SCRIPTS:
            script, fixed = _PER_KEY_SCRIPTS[args[1]]
            numkeys = int(args[2])
            keys, extra = args[3 : 3 + numkeys], args[3 + numkeys : 3 + numkeys + fixed]
            groups: dict[str, array[int]] = defaultdict(lambda: array("I"))
            for position, owner in enumerate(self.nodes.owners(keys)):
                groups[owner or primaries[0]].append(position)
            return [
                _Part(index, address, ("EVAL", script, 0, *extra, *(keys[p] for p in positions)), {}, positions)
                for address, positions in groups.items()
            ]
        if name in _EVERY_PRIMARY:  # server-wide: asked of every primary, answers summed
            return [_Part(index, address, args, options) for address in primaries]
        keys = list(options.get("keys") or [])
        if not keys and len(args) > 1:  # a command redis-py sends without its key list: the key is an argument
            keys = [args[2] if name in _SUBCOMMAND_KEY and len(args) > 2 else args[1]]
        if not keys:
            return [_Part(index, primaries[0], args, options)]
        if name in _COUNTING and len(keys) > 1:  # one part per slot: a node refuses keys of several slots
            by_slot: dict[int, list[str]] = defaultdict(list)
            for key in keys:
                by_slot[key_slot(key.encode("utf-8", "surrogateescape"))].append(key)
            return [
                _Part(index, self.nodes.owner(ks[0]) or primaries[0], (name, *ks), {**options, "keys": ks})
                for ks in by_slot.values()
            ]
        return [_Part(index, self.nodes.owner(keys[0]) or primaries[0], args, options)]

    async def _send(self, address: str, parts: list[_Part], asking: bool = False) -> list[object]:
        pipe = self.nodes.client(address).pipeline(transaction=False)
        for part in parts:
            if asking:
                pipe.execute_command("ASKING")
            pipe.execute_command(*part.args, **part.options)
        try:
            async with asyncio.timeout(self.nodes.node_timeout):
                replies = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError, TimeoutError) as exc:
            error = NodeUnreachable(f"cluster node {address}: {exc or type(exc).__name__}")
            self.nodes.record(address, error)
            return [error] * len(parts)
        self.nodes.record(address, None)
        return replies[1::2] if asking else replies

    async def _follow_redirects(self, parts: list[_Part], replies: dict[int, object]) -> None:
        """Send again, where the key lives now, every part a node refused because of resharding."""
        refused = [p for p in parts if _redirected(replies[id(p)])]
        if not refused:
            return
        self.nodes.stale = True
        retry: list[_Part] = []
        for part in refused:
            if part.keys:  # a per-key script: read each of its keys on its own
                del replies[id(part)]
                parts.remove(part)
                singles = [self._single_key_part(part, n) for n in range(len(part.keys))]
                parts.extend(singles)
                retry.extend(singles)
            else:
                retry.append(part)
        replies.update(await self._redirect(retry))

    def _single_key_part(self, part: _Part, n: int) -> _Part:
        original = next(s for s, (cluster_form, _) in _PER_KEY_SCRIPTS.items() if cluster_form == part.args[1])
        fixed = _PER_KEY_SCRIPTS[original][1]
        extra, key = part.args[3 : 3 + fixed], part.args[3 + fixed + n]
        address = self.nodes.owner(str(key)) or part.address
        return _Part(part.index, address, ("EVAL", original, 1, key, *extra), {}, [part.keys[n]])

    async def _redirect(self, parts: list[_Part]) -> dict[int, object]:
        """Send each part to its key's owner, following MOVED and ASK like a cluster client, in rounds.

        Each round sends one pipeline per (node, ASKING or not), so a thousand refused keys cost a few
        round trips and connections, not a thousand.
        """
        route = {id(p): (p.address, False) for p in parts}
        results: dict[int, object] = {}
        pending = list(parts)
        for _ in range(MAX_REDIRECTS):
            groups: dict[tuple[str, bool], list[_Part]] = defaultdict(list)
            for part in pending:
                groups[route[id(part)]].append(part)
            sent = await asyncio.gather(*(self._send(a, ps, asking) for (a, asking), ps in groups.items()))
            pending = []
            for group, replies in zip(groups.values(), sent, strict=True):
                for part, reply in zip(group, replies, strict=True):
                    results[id(part)] = reply
                    if isinstance(reply, MovedError):
                        address = f"{reply.host}:{reply.port}"
                        self.nodes.slots[reply.slot_id] = address  # the full map is reloaded next read
                        route[id(part)] = (address, False)
                    elif isinstance(reply, AskError):
                        route[id(part)] = (f"{reply.host}:{reply.port}", True)
                    elif not isinstance(reply, TryAgainError):
                        continue
                    pending.append(part)
            if not pending:
                break
            if any(isinstance(results[id(p)], TryAgainError) for p in pending):
                await asyncio.sleep(0.05)
        return results

    def _merge(self, args: tuple[Any, ...], parts: list[_Part], replies: dict[int, object]) -> object:
        results = [replies.pop(id(p)) for p in parts]  # each command's node replies freed once merged
        if args[0] == "EVAL" and args[1] in _PER_KEY_SCRIPTS:
            return _merge_per_key(int(args[2]), parts, results)
        if len(results) == 1:
            return results[0]
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:
            return failed
        if all(isinstance(r, int) for r in results):
            return sum(results)  # type: ignore[arg-type]
        if all(isinstance(r, dict) for r in results):
            return _sum_info(results)  # type: ignore[arg-type]
        return results[0]


def _merge_per_key(numkeys: int, parts: list[_Part], results: list[object]) -> list[object] | BaseException:
    """Header counters summed, each key's values back at its position; ``unread`` where its node failed."""
    firsts, seconds = [UNREAD[0]] * numkeys, [UNREAD[1]] * numkeys
    hits = misses = 0
    for part, reply in zip(parts, results, strict=True):
        if isinstance(reply, NodeUnreachable) or _redirected(reply):
            continue  # its node is down, or its slot has no reachable owner now: unread, never guessed
        if isinstance(reply, BaseException):
            return reply  # the script itself failed (not the node): fail like a standalone Redis would
        assert isinstance(reply, list), repr(reply)
        assert len(reply) == 2 + 2 * len(part.keys), "two counters, then two values per key"
        hits, misses = hits + reply[0], misses + reply[1]
        # placed in C (a deque that keeps nothing drains the maps): 100,000 keys a scrape
        deque(map(firsts.__setitem__, part.keys, reply[2::2]), maxlen=0)
        deque(map(seconds.__setitem__, part.keys, reply[3::2]), maxlen=0)
    merged: list[object] = [hits, misses, *[None] * (2 * numkeys)]
    merged[2::2], merged[3::2] = firsts, seconds
    return merged


def _sum_info(infos: list[dict[str, Any]]) -> dict[str, Any]:
    """INFO of every primary: numbers summed (memory, clients, hits), anything else from the first."""
    total = dict(infos[0])
    for info in infos[1:]:
        for name, value in info.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and name in total:
                total[name] += value
    return total
