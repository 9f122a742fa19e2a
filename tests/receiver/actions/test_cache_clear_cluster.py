"""cache_clear and redis_set on a real Redis Cluster: every primary is scanned, keys land in their slots."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opsloop.receiver.actions import build_action
from opsloop.receiver.actions.config import ActionConfig
from opsloop.testsupport.redis_topologies import RedisClusterNodes
from pydantic import TypeAdapter

pytestmark = pytest.mark.slow
ADAPTER: TypeAdapter[ActionConfig] = TypeAdapter(ActionConfig)


@pytest.fixture
def cluster() -> Iterator[RedisClusterNodes]:
    with RedisClusterNodes(primaries=3) as nodes:
        yield nodes


async def test_cache_clear_unlinks_matching_keys_on_every_primary(cluster):
    with cluster.client() as client:
        for i in range(300):
            client.set(f"cache:user:{i}", "x")
        for i in range(20):
            client.set(f"session:{i}", "keep")
    owners = {node.port for node in cluster.owners([f"cache:user:{i}" for i in range(300)]).values()}
    assert len(owners) == 3
    config = {"type": "cache_clear", "redis": cluster.url, "pattern": "cache:user:*", "batch": 50}
    action = build_action(ADAPTER.validate_python(config))
    dry = await action.run({}, dry_run=True)
    assert dry.detail == "would unlink 300 keys matching cache:user:*"
    result = await action.run({})
    assert result.detail == "unlinked 300 keys matching cache:user:*"
    with cluster.client() as client:
        assert list(client.scan_iter(match="cache:user:*")) == []
        assert len(list(client.scan_iter(match="session:*"))) == 20


async def test_cache_clear_stops_at_max_keys_across_nodes(cluster):
    with cluster.client() as client:
        for i in range(100):
            client.set(f"cache:{i}", "x")
    config = {"type": "cache_clear", "redis": cluster.url, "pattern": "cache:*", "max_keys": 40, "batch": 25}
    result = await build_action(ADAPTER.validate_python(config)).run({})
    assert result.detail == "unlinked 40 keys matching cache:*; stopped at max_keys 40, more may remain"
    with cluster.client() as client:
        assert len(list(client.scan_iter(match="cache:*"))) == 60


async def test_redis_set_writes_to_the_slot_owner_from_any_seed(cluster):
    config = {
        "type": "redis_set", "mode": "cluster", "redis": cluster.seed_urls[2], "seeds": cluster.seed_urls[:2],
        "key": "maintenance:{service}", "value": "on", "ttl": "1m",
    }  # fmt: skip
    result = await build_action(ADAPTER.validate_python(config)).run({"service": "billing"})
    assert result.ok, result.detail
    with cluster.client() as client:
        assert client.get("maintenance:billing") == "on"
        assert 0 < client.pttl("maintenance:billing") <= 60_000
