"""kill -9 of a running opsloop-receiver in the middle of a cross-slot dlq_requeue on a real Redis Cluster."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from collections import Counter
from collections.abc import Iterator

import aiohttp
import pytest
from opsloop.testsupport.redis_topologies import RedisClusterNodes
from opsloop.testsupport.servers import LOOPBACK, free_port
from opsloop.testsupport.services import spawn_service

from tests.receiver.harness import TOKEN, alert, eventually, webhook, write_config

pytestmark = pytest.mark.slow
ITEMS = 3000


@pytest.fixture
def cluster() -> Iterator[RedisClusterNodes]:
    with RedisClusterNodes(primaries=3) as nodes:
        yield nodes


async def test_kill_9_of_the_receiver_mid_move_loses_and_duplicates_nothing(cluster, tmp_path):
    source, target = "dlq:crash", "queue:crash"
    owners = cluster.owners([source, target])
    assert owners[source] is not owners[target]  # the move spans two nodes: journalled, not one script
    with cluster.client() as client:
        client.lpush(source, *[f"m{i}" for i in range(ITEMS)])
    requeue = {
        "type": "dlq_requeue", "redis": cluster.url, "from": "{dlq}", "to": "queue:{name}", "max_items": 100_000,
        "batch": 20, "timeout": "60s",
    }  # fmt: skip
    plan = {
        "name": "requeue-dlq", "match": {"alertname": "DLQEntriesIncreasing"},
        "labels": {"dlq": "^dlq:(?P<name>[a-z0-9_-]{1,64})$"}, "actions": [requeue], "stages": ["0s"],
        "notify_firing": False,
    }  # fmt: skip
    config = write_config(tmp_path, recovery=[plan])
    port = free_port()
    receiver = await asyncio.to_thread(spawn_service, "receiver", config, port, tmp_path)
    try:
        async with aiohttp.ClientSession() as session:
            payload = webhook(alert("c1", alertname="DLQEntriesIncreasing", dlq=source))
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with session.post(f"http://{LOOPBACK}:{port}/alerts", json=payload, headers=headers) as resp:
                assert resp.status == 200
        with cluster.client() as client:

            async def started() -> bool:
                return client.llen(target) >= 300

            await eventually(started, 20, "the move to start")
        receiver.signal(signal.SIGKILL)  # no shutdown, no cleanup: a crash mid-move
        receiver.proc.wait(5)  # type: ignore[union-attr]
        with cluster.client() as client:
            moved = client.llen(target)
        assert 300 <= moved < ITEMS  # really killed in the middle

        # Restarted, the receiver settles what the crash left before it answers ready. By design it does not
        # repeat an interrupted stage's actions, so what was not moved stays in the DLQ, once.
        receiver = await asyncio.to_thread(spawn_service, "receiver", config, port, tmp_path)
        with cluster.client() as client:
            items = client.lrange(target, 0, -1) + client.lrange(source, 0, -1)
        with sqlite3.connect(tmp_path / "receiver.db") as db:
            states = dict(db.execute("SELECT state, count(*) FROM redis_moves GROUP BY state").fetchall())
    finally:
        receiver.stop()
    assert Counter(items) == Counter(f"m{i}" for i in range(ITEMS))  # none lost, none twice
    assert "pending" not in states
    assert states["done"] >= 300 // 20  # every batch went through the journal
