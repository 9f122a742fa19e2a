"""Start a real Redis Cluster or a real Sentinel-managed primary/replica set on loopback ports.

Both build on ``RedisServer``: every node is an ordinary redis-server child process in its own
directory, so tests can kill, pause and restart one node exactly as they do a standalone Redis.
"""

from __future__ import annotations

import abc
import contextlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

import redis
from opsloop.testsupport.servers import (
    LOOPBACK,
    ManagedProcess,
    RedisServer,
    ServerError,
    bindable,
    free_port,
    wait_until,
)

BUS_OFFSET = 10_000
"""A cluster node's bus listens on its port + 10000, so the client port must stay <= 55535."""


def cluster_ports(count: int) -> list[int]:
    """Distinct free ports whose bus port (+10000) is free too."""
    ports: list[int] = []
    for _ in range(1000):
        port = free_port()
        if port <= 65535 - BUS_OFFSET and port not in ports and bindable(port + BUS_OFFSET):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise ServerError(f"found only {len(ports)} of {count} free cluster ports")


def _client(port: int, **options: object) -> redis.Redis:
    return redis.Redis(LOOPBACK, port, socket_timeout=5, socket_connect_timeout=2, decode_responses=True, **options)


class _Topology(abc.ABC):
    """Several servers started together in one temp directory, removed whole when they stop."""

    workdir: Path

    @abc.abstractmethod
    def start(self) -> Self: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


class RedisClusterNodes(_Topology):
    """A Redis Cluster of ``primaries`` primaries with ``replicas`` replicas each.

    ``cluster-require-full-coverage no`` lets the surviving primaries keep serving their own slots
    while one primary is down, which is how partial reads are tested; ``node_timeout_ms`` bounds how
    long the cluster takes to mark a dead node failed and promote its replica.
    """

    def __init__(self, primaries: int = 3, replicas: int = 0, node_timeout_ms: int = 2000) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="opsloop-redis-cluster-"))
        self.primary_count = primaries
        self.replicas = replicas
        ports = cluster_ports(primaries * (1 + replicas))
        options = [
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(node_timeout_ms),
            "--cluster-require-full-coverage", "no",
        ]  # fmt: skip
        self.nodes = [RedisServer(self.workdir / str(port), port, extra=options) for port in ports]

    @property
    def seed_urls(self) -> list[str]:
        return [f"redis://{LOOPBACK}:{node.port}" for node in self.nodes]

    @property
    def url(self) -> str:
        """One seed in the ``redis+cluster://`` form."""
        return f"redis+cluster://{LOOPBACK}:{self.nodes[0].port}"

    def start(self) -> RedisClusterNodes:
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli") or "redis-cli"
        addresses = [f"{LOOPBACK}:{node.port}" for node in self.nodes]
        done = subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise ServerError(f"redis-cli --cluster create failed:\n{done.stdout}\n{done.stderr}")
        self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Every running node sees all slots served and agrees on who serves them."""
        wait_until(self._agreed, timeout, "the cluster to agree on its slots")

    def _agreed(self) -> bool:
        views = set()
        for node in self.nodes:
            if not node.process.running:
                continue
            try:
                with _client(node.port) as client:
                    info = client.cluster("INFO")
                    if info["cluster_state"] != "ok" or int(info["cluster_slots_ok"]) != 16384:
                        return False
                    views.add(tuple(sorted((s[0], s[2][1]) for s in client.execute_command("CLUSTER", "SLOTS"))))
            except (redis.RedisError, OSError, KeyError):
                return False
        return len(views) == 1

    def client(self) -> redis.RedisCluster:
        """A synchronous cluster client for test setup and for checking results against Redis."""
        running = next(node for node in self.nodes if node.process.running)
        return redis.RedisCluster(LOOPBACK, running.port, decode_responses=True, socket_timeout=5)

    def node(self, port: int) -> RedisServer:
        return next(node for node in self.nodes if node.port == port)

    def primaries(self) -> list[RedisServer]:
        """The running nodes that serve slots now (after failovers, not the nodes started as primaries)."""
        with self.client() as cluster:
            ports = {node.port for node in cluster.get_primaries()}
        return [node for node in self.nodes if node.port in ports]

    def owner(self, key: str) -> RedisServer:
        """The primary serving the key's slot."""
        return self.owners([key])[key]

    def owners(self, keys: list[str]) -> dict[str, RedisServer]:
        """The primary serving each key's slot, from one look at the slot map."""
        with self.client() as cluster:
            return {key: self.node(cluster.get_node_from_key(key).port) for key in keys}

    def slot_owner(self, slot: int) -> RedisServer:
        with self.client() as cluster:
            return self.node(cluster.nodes_manager.get_node_from_slot(slot).port)

    def move_slot(self, slot: int, target: RedisServer, batch: int = 10, pause: float = 0.0) -> int:
        """Reshard one slot to ``target`` key batch by key batch (``CLUSTER SETSLOT`` + ``MIGRATE``).

        ``pause`` sleeps between batches so readers see the slot half-migrated. Returns the keys moved.
        """
        source = self.slot_owner(slot)
        if source is target:
            return 0
        moved = 0
        with _client(source.port) as src, _client(target.port) as dst:
            source_id, target_id = src.cluster("MYID"), dst.cluster("MYID")
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
            while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch):
                src.execute_command("MIGRATE", LOOPBACK, target.port, "", 0, 5000, "KEYS", *keys)
                moved += len(keys)
                time.sleep(pause)
            for port in {node.port for node in self.primaries()}:
                with _client(port) as client:
                    client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        self.wait_healthy()
        return moved

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class SentinelProcess:
    """One ``redis-server --sentinel`` watching ``primary_name``; sentinels rewrite their own config file."""

    def __init__(self, workdir: Path, primary_name: str, primary_port: int, password: str | None) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.password = password
        self.process = ManagedProcess("sentinel", workdir)
        lines = [
            f"bind {LOOPBACK}",
            f"port {self.port}",
            f"dir {workdir}",
            "protected-mode no",
            f"sentinel monitor {primary_name} {LOOPBACK} {primary_port} 2",
            f"sentinel down-after-milliseconds {primary_name} 1000",
            f"sentinel failover-timeout {primary_name} 10000",
            f"sentinel parallel-syncs {primary_name} 1",
        ]
        if password is not None:
            lines.append(f"requirepass {password}")
        self.config = workdir / "sentinel.conf"
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        if self.process.running:
            return
        self.process.spawn([shutil.which("redis-server") or "redis-server", str(self.config), "--sentinel"])
        self.process.wait_ready(self._answers)

    def _answers(self) -> bool:
        with contextlib.suppress(redis.RedisError, OSError), self.client() as client:
            return bool(client.ping())
        return False

    def client(self) -> redis.Redis:
        return _client(self.port, password=self.password)

    def stop(self) -> None:
        self.process.stop()


class RedisSentinelSet(_Topology):
    """One primary, one replica and three sentinels (quorum 2) watching them under ``primary_name``."""

    def __init__(self, primary_name: str = "opsloop", sentinel_password: str | None = None) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="opsloop-redis-sentinel-"))
        self.primary_name = primary_name
        self.sentinel_password = sentinel_password
        self.primary = RedisServer(self.workdir / "primary")
        self.replica = RedisServer(self.workdir / "replica", extra=["--replicaof", LOOPBACK, str(self.primary.port)])
        self.sentinels = [
            SentinelProcess(self.workdir / f"sentinel{i}", primary_name, self.primary.port, sentinel_password)
            for i in range(3)
        ]

    @property
    def sentinel_addresses(self) -> list[str]:
        return [f"{LOOPBACK}:{s.port}" for s in self.sentinels]

    def start(self) -> RedisSentinelSet:
        self.primary.start()
        self.replica.start()
        wait_until(self._replica_synced, 30, "the replica to sync")
        for sentinel in self.sentinels:
            sentinel.start()
        wait_until(self._sentinels_agree, 30, "the sentinels to find each other and the replica")
        return self

    def _replica_synced(self) -> bool:
        with contextlib.suppress(redis.RedisError, OSError), _client(self.replica.port) as client:
            return client.info("replication").get("master_link_status") == "up"
        return False

    def _sentinels_agree(self) -> bool:
        try:
            for sentinel in self.sentinels:
                with sentinel.client() as client:
                    state = client.execute_command("SENTINEL", "MASTER", self.primary_name)
                    if int(state["num-slaves"]) < 1 or int(state["num-other-sentinels"]) < 2:
                        return False
        except (redis.RedisError, OSError, KeyError):
            return False
        return True

    def primary_port(self) -> int:
        """The port the sentinels announce as primary now."""
        with self.sentinels[0].client() as client:
            _, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.primary_name)
        return int(port)

    def current_primary(self) -> RedisServer:
        port = self.primary_port()
        return self.primary if self.primary.port == port else self.replica

    def failover(self, wait: bool = True, timeout: float = 30.0) -> RedisServer:
        """``SENTINEL FAILOVER``: promote the replica; with ``wait``, until it accepts writes."""
        old = self.current_primary()
        new = self.replica if old is self.primary else self.primary
        with self.sentinels[0].client() as client:
            client.execute_command("SENTINEL", "FAILOVER", self.primary_name)
        if wait:
            self.wait_primary(new, timeout)
        return new

    def wait_primary(self, node: RedisServer, timeout: float = 30.0) -> None:
        """Until every sentinel names ``node`` and it answers as a writable primary."""

        def settled() -> bool:
            try:
                for sentinel in self.sentinels:
                    with sentinel.client() as client:
                        addr = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.primary_name)
                        if int(addr[1]) != node.port:
                            return False
                with _client(node.port) as client:
                    return client.info("replication")["role"] == "master"
            except (redis.RedisError, OSError, KeyError, TypeError):
                return False

        wait_until(settled, timeout, f"{node.port} to become primary")

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        self.replica.stop()
        self.primary.stop()
