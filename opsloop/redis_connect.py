"""One way to reach Redis for every part: a standalone server, a Redis Cluster or a Sentinel-managed primary.

Config sections that name a Redis (the exporter's ``redis`` entries, the receiver's Redis actions) mix in
``RedisTopology`` (``opsloop.redis_topology``) and build their clients with ``connect``, so the three
modes read the same everywhere:

- ``standalone`` (the default): one ``redis://``, ``rediss://`` or ``unix://`` URL.
- ``cluster``: a ``redis+cluster://`` URL (or ``mode: cluster`` with a ``redis://`` URL) plus any
  further ``seeds``; the client learns the slot map from whichever seed answers.
- ``sentinel``: ``sentinels`` (``host:port``) and ``primary_name``; the client asks the sentinels for
  the primary on every new connection, so a failover needs no restart. The URL, optional here, only
  supplies the primary's credentials and database; its host is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:  # redis-py is imported when a client is built, so loading a config does not pay for it
    from redis.asyncio import Redis, RedisCluster

Mode = Literal["standalone", "cluster", "sentinel"]
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
URL_SCHEMES = ("redis", "rediss", "unix", *CLUSTER_SCHEMES)


def url_mode(url: str | None) -> Mode:
    """The mode a URL implies: ``redis+cluster://`` means cluster, anything else standalone."""
    return "cluster" if url is not None and urlsplit(url).scheme in CLUSTER_SCHEMES else "standalone"


def host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} is not a host:port address")
    return host, int(port)


@dataclass(frozen=True)
class RedisTarget:
    """A resolved topology: what ``connect`` needs, secrets included (never log it)."""

    mode: Mode
    url: str | None
    password: str | None = None
    seeds: tuple[str, ...] = ()
    sentinels: tuple[tuple[str, int], ...] = ()
    primary_name: str | None = None
    sentinel_password: str | None = None

    def cluster_nodes(self) -> list[tuple[str, int]]:
        """Every seed as (host, port), the URL first."""
        urls = [u for u in (self.url, *self.seeds) if u is not None]
        return [(parts.hostname or "127.0.0.1", parts.port or 6379) for parts in map(urlsplit, urls)]


class Topology(Protocol):
    """The topology keys of a config section: a ``RedisTopology`` model, or its validated values as plain
    data (the exporter serves from those, see ``opsloop.exporter.config_snapshot``)."""

    mode: Mode | None
    seeds: list[str]
    sentinels: list[str]
    primary_name: str | None

    def secret(self, name: str) -> str | None: ...


def effective_mode(topology: Topology, url: str | None) -> Mode:
    """The configured mode, or the one the URL implies."""
    return topology.mode or url_mode(url)


def resolve_target(topology: Topology, url: str | None, password: str | None) -> RedisTarget:
    mode = effective_mode(topology, url)
    if url is not None and urlsplit(url).scheme not in URL_SCHEMES:
        raise ValueError(
            f"not a Redis URL: expected redis://, rediss://, unix:// or redis+cluster://, got {urlsplit(url).scheme}://"
        )
    if mode == "cluster" and url is not None and urlsplit(url).scheme == "unix":
        raise ValueError("a cluster is reached over TCP: use redis:// or redis+cluster:// URLs")
    return RedisTarget(
        mode=mode,
        url=url,
        password=password,
        seeds=tuple(topology.seeds),
        sentinels=tuple(host_port(a) for a in topology.sentinels),
        primary_name=topology.primary_name,
        sentinel_password=topology.secret("sentinel_password"),
    )


def _url_options(url: str) -> dict[str, Any]:
    """Credentials, database and TLS from a URL, for clients built from parts rather than from the URL."""
    parts = urlsplit(url.replace("+cluster://", "://", 1))
    options: dict[str, Any] = {}
    if parts.username:
        options["username"] = unquote(parts.username)
    if parts.password:
        options["password"] = unquote(parts.password)
    if parts.scheme == "rediss":
        options["ssl"] = True
    db = parts.path.strip("/")
    if db.isdigit():
        options["db"] = int(db)
    return options


def node_client(target: RedisTarget, host: str, port: int, **options: Any) -> Redis:
    """A plain client for one cluster node, with the target's credentials."""
    from redis.asyncio import Redis

    merged = {**_url_options(target.url or ""), **options}
    merged.pop("db", None)  # cluster nodes have database 0 only
    if target.password is not None:
        merged["password"] = target.password
    return Redis(host=host, port=port, **merged)


def connect(target: RedisTarget, **options: Any) -> Redis | RedisCluster:
    """An asyncio client for the target; ``options`` are redis-py connection options (timeouts, decoding)."""
    from redis.asyncio import Redis, RedisCluster
    from redis.asyncio.cluster import ClusterNode
    from redis.asyncio.sentinel import Sentinel

    if target.mode == "cluster":
        merged = {**_url_options(target.url or ""), **options}
        merged.pop("db", None)
        merged.pop("max_connections", None)  # per node in a cluster; redis-py's default suits actions
        if target.password is not None:
            merged["password"] = target.password
        nodes = [ClusterNode(host, port) for host, port in target.cluster_nodes()]
        return RedisCluster(startup_nodes=nodes, **merged)
    if target.mode == "sentinel":
        merged = {**(_url_options(target.url) if target.url else {}), **options}
        if target.password is not None:
            merged["password"] = target.password
        sentinel_options = {
            k: v for k, v in options.items() if k in ("socket_timeout", "socket_connect_timeout", "client_name")
        }
        if target.sentinel_password is not None:
            sentinel_options["password"] = target.sentinel_password
        sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_options)
        assert target.primary_name is not None  # checked by RedisTopology
        return sentinel.master_for(target.primary_name, redis_class=Redis, **merged)
    assert target.url is not None
    if target.password is not None:
        options = {**options, "password": target.password}
    return Redis.from_url(target.url, **options)
