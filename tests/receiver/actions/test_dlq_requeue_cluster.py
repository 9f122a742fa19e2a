"""dlq_requeue on a real Redis Cluster: same-slot moves stay atomic, cross-slot moves go through the journal."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from opsloop.receiver.actions import attach_journal, build_action
from opsloop.receiver.actions.config import ActionConfig
from opsloop.receiver.actions.slot_move import marker_key
from opsloop.receiver.store import SqliteStore
from opsloop.testsupport.redis_topologies import RedisClusterNodes
from pydantic import TypeAdapter

pytestmark = pytest.mark.slow
ADAPTER: TypeAdapter[ActionConfig] = TypeAdapter(ActionConfig)


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterNodes]:
    with RedisClusterNodes(primaries=3) as nodes:
        yield nodes


@pytest.fixture
def store(sqlite_store: SqliteStore) -> SqliteStore:
    return sqlite_store


def action_config(cluster: RedisClusterNodes, source: str, target: str, **options: object) -> dict[str, object]:
    return {"type": "dlq_requeue", "redis": cluster.url, "from": source, "to": target, **options}


def consume(cluster: RedisClusterNodes, key: str) -> list[str]:
    with cluster.client() as client:
        out = []
        while (item := client.rpop(key)) is not None:
            out.append(item)
        return out


def fill(cluster: RedisClusterNodes, key: str, count: int) -> None:
    with cluster.client() as client:
        client.delete(key)
        client.lpush(key, *[f"m{i}" for i in range(count)])  # m0 failed first: oldest, right end


def different_nodes(cluster: RedisClusterNodes, source: str, target: str) -> bool:
    owners = cluster.owners([source, target])
    return owners[source] is not owners[target]


async def test_same_slot_keys_move_atomically(cluster):
    fill(cluster, "dlq:{mail}", 30)
    # a hash tag puts both keys in one slot; templates write its braces doubled
    config = action_config(cluster, "dlq:{{mail}}", "queue:{{mail}}", max_items=30)
    action = build_action(ADAPTER.validate_python(config))
    result = await action.run({})
    assert result.ok, result.detail
    assert "journalled" not in result.detail
    assert consume(cluster, "queue:{mail}") == [f"m{i}" for i in range(30)]


async def test_keys_on_different_nodes_move_in_order_through_the_journal(cluster, store):
    source, target = "dlq:mail", "queue:mail"
    assert different_nodes(cluster, source, target)
    fill(cluster, source, 250)
    action = build_action(ADAPTER.validate_python(action_config(cluster, source, target, max_items=200, batch=30)))
    refused = await action.run({})
    assert not refused.ok
    assert "needs the receiver's store" in refused.detail
    await attach_journal([action], store)
    result = await action.run({})
    assert result.ok, result.detail
    assert result.detail.startswith("moved 200 items dlq:mail -> queue:mail (50 left")
    assert consume(cluster, target) == [f"m{i}" for i in range(200)]  # oldest first, as consumers see them
    assert consume(cluster, source) == [f"m{i}" for i in range(200, 250)]
    assert await store.pending_moves(action.redis_id) == []
    with cluster.client() as client:
        assert client.smembers(marker_key(source)) == set()
        assert client.smembers(marker_key(target)) == set()


async def test_sorted_sets_keep_their_scores_across_slots(cluster, store):
    with cluster.client() as client:
        client.zadd("dlq:z", {f"j{i}": float(i) for i in range(40)})
    action = build_action(ADAPTER.validate_python(action_config(cluster, "dlq:z", "queue:z", max_items=25, batch=7)))
    await attach_journal([action], store)
    assert (await action.run({})).ok
    with cluster.client() as client:
        assert client.zrange("queue:z", 0, -1, withscores=True) == [(f"j{i}", float(i)) for i in range(25)]
        assert client.zcard("dlq:z") == 15


MOVER = """
import asyncio, sys
from pydantic import TypeAdapter
from opsloop.receiver.actions import attach_journal, build_action
from opsloop.receiver.actions.config import ActionConfig
from opsloop.receiver.store import SqliteStore

async def main():
    store = SqliteStore(sys.argv[1])
    await store.open()
    config = {"type": "dlq_requeue", "redis": sys.argv[2], "from": "dlq:crash", "to": "queue:crash",
              "max_items": 100000, "batch": 3, "timeout": 60}
    action = build_action(TypeAdapter(ActionConfig).validate_python(config))
    await attach_journal([action], store)
    print("moving", flush=True)
    print(await action.run({}), flush=True)

asyncio.run(main())
"""


def run_and_kill(argv: list[str], cluster: RedisClusterNodes, target: str, moved: int) -> None:
    """Start the mover and SIGKILL it once Redis shows at least ``moved`` items arrived: a crash at a
    known point of the move, no cleanup, whatever the machine's speed."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"moving\n"
        deadline = time.monotonic() + 30
        with cluster.client() as client:
            while client.llen(target) < moved and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.001)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)


@pytest.mark.parametrize("moved", [1, 300, 1500])
async def test_kill_9_mid_move_loses_and_duplicates_nothing(cluster, store, tmp_path, moved):
    source, target = "dlq:crash", "queue:crash"
    assert different_nodes(cluster, source, target)
    fill(cluster, source, 3000)
    with cluster.client() as client:
        client.delete(target)
    db = tmp_path / "receiver.db"
    await asyncio.to_thread(run_and_kill, [sys.executable, "-c", MOVER, str(db), cluster.url], cluster, target, moved)
    with cluster.client() as client:
        moved_before = client.llen(target)
    assert 0 < moved_before < 3000  # really killed mid-move

    again = SqliteStore(db)  # a restarted receiver: startup settles what the crash left
    await again.open()
    try:
        action = build_action(ADAPTER.validate_python(action_config(cluster, source, target, max_items=100000)))
        await attach_journal([action], again)
        assert await again.pending_moves(action.redis_id) == []
        everything = consume(cluster, target) + consume(cluster, source)
    finally:
        await again.close()
    counts = Counter(everything)
    assert len(everything) == 3000
    assert counts == Counter(f"m{i}" for i in range(3000))  # none lost, none twice
