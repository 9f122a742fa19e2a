"""hiredis packing sends exactly the bytes redis-py's own packer would, and a real Redis reads them."""

from __future__ import annotations

import pytest
from opsloop.exporter.sources.redis_packing import HiredisPacking, pack_with_hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import Connection

COMMANDS = [
    ("EVAL", "return #KEYS", 3, "bench:0", "ключ:ü", "", "enqueued_at", "right", "1"),
    ("CLUSTER SLOTS",),
    (b"CONFIG GET", "maxmemory"),
    ("CONFIG\tGET", "maxmemory"),
    ("SET", b"raw\x00bytes", "value\r\nwith CRLF"),
    ("XINFO", "GROUPS", "events"),
    ("ZADD", "z", 1.5, "float member"),  # a float: redis-py's packer decides
    ("GET", "lone surrogate \udcff"),  # redis-py's encoding_errors decide
]


@pytest.mark.parametrize("args", COMMANDS)
def test_packs_the_bytes_redis_py_packs(args: tuple[object, ...]) -> None:
    ours = type("Packed", (HiredisPacking, Connection), {})(encoding_errors="replace")
    theirs = Connection(encoding_errors="replace")
    assert b"".join(ours.pack_command(*args)) == b"".join(theirs.pack_command(*args))


def test_bool_is_refused_as_redis_py_refuses_it() -> None:
    ours = type("Packed", (HiredisPacking, Connection), {})()
    with pytest.raises(Exception, match="Invalid input of type: 'bool'"):
        ours.pack_command("SET", "k", True)


async def test_a_client_whose_pool_packs_with_hiredis_reads_and_writes_redis(redis_server) -> None:
    client = Redis.from_url(redis_server.url, decode_responses=True)
    pack_with_hiredis(client.connection_pool)
    pack_with_hiredis(client.connection_pool)  # twice: still one subclass, of the pool's own class
    assert client.connection_pool.connection_class.__mro__[1:3] == (HiredisPacking, Connection)
    try:
        pipe = client.pipeline(transaction=False)
        pipe.set("ключ:ü", "värde")
        pipe.eval("return {KEYS[1], ARGV[1]}", 1, "ключ:ü", "")
        pipe.get("ключ:ü")
        assert await pipe.execute() == [True, ["ключ:ü", ""], "värde"]
    finally:
        await client.aclose()
