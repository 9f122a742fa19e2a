"""The exporter's HTTP/1.1 server, read with the standard library's http.client and raw sockets."""

from __future__ import annotations

import asyncio
import gzip
import http.client
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from opsloop.exporter import httpserver
from opsloop.exporter.httpserver import MAX_BODY_BYTES, MAX_HEADER_BYTES, HttpServer, Request, Response, accepts_gzip

from opsloop.webguard import WebGuard


async def hello(request: Request) -> Response:
    return Response(body=f"hello {request.method}\n".encode())


async def chunks(_: Request) -> Response:
    return Response(body=(f"line {n}\n".encode() for n in range(3000)), compress=True)


async def broken(_: Request) -> Response:
    raise RuntimeError("handler bug")


def _half_then_fail() -> Iterator[bytes]:
    yield b"first chunk\n"
    raise RuntimeError("render bug")


async def half(_: Request) -> Response:
    return Response(body=_half_then_fail())


@pytest.fixture
async def port() -> AsyncIterator[int]:
    routes = {"/hello": hello, "/chunks": chunks, "/broken": broken, "/half": half}
    server = HttpServer(routes, WebGuard(None))
    await server.setup()
    await server.listen("127.0.0.1", 0, None)
    yield server.ports[0]
    await server.cleanup()


def request(port: int, method: str, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, headers=headers or {})
    return conn.getresponse()


async def raw(port: int, data: bytes) -> bytes:
    """Send ``data`` and read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def test_get_head_404_405_and_keep_alive(port: int) -> None:
    def exchange() -> list[tuple[int, bytes, dict[str, str]]]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        out = []
        for method, path in (("GET", "/hello"), ("HEAD", "/hello"), ("GET", "/nope"), ("POST", "/hello")):
            conn.request(method, path)
            resp = conn.getresponse()
            out.append((resp.status, resp.read(), dict(resp.headers)))
        assert conn.sock is not None  # one connection served all four: keep-alive
        return out

    (ok, head, missing, post) = await asyncio.to_thread(exchange)
    assert ok[:2] == (200, b"hello GET\n")
    assert ok[2]["Content-Type"] == "text/plain; charset=utf-8"
    assert ok[2]["Content-Length"] == "10"
    assert head[:2] == (200, b"")
    assert head[2]["Content-Length"] == "11"  # the length GET would have: "hello HEAD\n"
    assert missing[:2] == (404, b"404: Not Found")
    assert post[0] == 405
    assert post[2]["Allow"] == "GET, HEAD"


async def test_streamed_body_chunked_and_gzip_only_when_asked(port: int) -> None:
    expected = "".join(f"line {n}\n" for n in range(3000)).encode()
    plain = await asyncio.to_thread(request, port, "GET", "/chunks", {"Accept-Encoding": "identity"})
    assert plain.getheader("Transfer-Encoding") == "chunked"
    assert plain.getheader("Content-Encoding") is None
    assert plain.read() == expected
    zipped = await asyncio.to_thread(request, port, "GET", "/chunks", {"Accept-Encoding": "deflate, gzip;q=0.5"})
    assert zipped.getheader("Content-Encoding") == "gzip"
    assert gzip.decompress(zipped.read()) == expected
    refused = await asyncio.to_thread(request, port, "GET", "/chunks", {"Accept-Encoding": "gzip;q=0"})
    assert refused.getheader("Content-Encoding") is None
    assert refused.read() == expected


async def test_http_1_0_closes_after_the_body(port: int) -> None:
    answer = await raw(port, b"GET /chunks HTTP/1.0\r\nHost: x\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"Connection: close" in head
    assert b"Transfer-Encoding" not in head
    assert body == "".join(f"line {n}\n" for n in range(3000)).encode()


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET /hello HTTP/2.0\r\n\r\n", b"400"),
        (b"GET /hello HTTP/1.1\r\nno colon here\r\n\r\n", b"400"),
        (b"GET /hello HTTP/1.1\r\nContent-Length: x\r\n\r\n", b"400"),
        (b"GET /hello HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1), b"413"),
        (b"GET /hello HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"501"),
        (b"GET /hello HTTP/1.1\r\nX-Big: " + b"a" * MAX_HEADER_BYTES + b"\r\n\r\n", b"431"),
    ],
)
async def test_malformed_or_oversized_requests_get_an_error_and_a_closed_connection(
    port: int, data: bytes, status: bytes
) -> None:
    answer = await raw(port, data)  # returns only once the server closed the connection
    assert answer.startswith(b"HTTP/1.1 " + status + b" ")
    assert b"Connection: close" in answer


async def test_absolute_form_and_query_strings_route_by_path(port: int) -> None:
    answer = await raw(port, b"GET http://127.0.0.1/hello?x=1 HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"hello GET\n")


async def test_a_small_body_is_read_and_the_connection_kept(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /hello HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde")
        writer.write(b"GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    assert answer.count(b"HTTP/1.1 200 OK") == 2
    assert answer.endswith(b"hello GET\n")


async def test_a_failing_handler_gets_500_and_a_failing_body_a_cut_response(port: int, caplog) -> None:
    failed = await asyncio.to_thread(request, port, "GET", "/broken")
    assert (failed.status, failed.read()) == (500, b"500: Internal Server Error")
    cut = await asyncio.to_thread(request, port, "GET", "/half")
    assert cut.status == 200  # the headers went out before the body failed
    with pytest.raises(http.client.IncompleteRead):
        cut.read()
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == ["request failed", "response failed"]
    ok = await asyncio.to_thread(request, port, "GET", "/hello")
    assert (ok.status, ok.read()) == (200, b"hello GET\n")


@pytest.mark.parametrize("partial", [b"GET /hel", b"GET /hello HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"])
async def test_a_stalled_request_is_closed_after_the_header_timeout(
    port: int, partial: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(httpserver, "HEADER_TIMEOUT", 0.2)
    started = time.monotonic()
    assert await raw(port, partial) == b""  # closed without an answer
    assert time.monotonic() - started < 5


def test_accepts_gzip() -> None:
    assert accepts_gzip("gzip")
    assert accepts_gzip("deflate, GZIP;q=0.8")
    assert accepts_gzip("*")
    assert not accepts_gzip("gzip;q=0")
    assert not accepts_gzip("identity")
    assert not accepts_gzip("")
