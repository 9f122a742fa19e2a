"""A small HTTP/1.1 server on asyncio streams for the exporter's few GET endpoints.

aiohttp's server, client and their dependencies cost the idle exporter about 11 MiB, a fifth of its
memory, to serve four GET routes (benchmarks/README.md). This serves exactly what a Prometheus
scrape and a browser need: GET and HEAD, keep-alive (HTTP/1.1 by default, HTTP/1.0 on request),
404 and 405 with ``Allow``, gzip when the client accepts it, streamed bodies with chunked transfer
coding, TLS through the listening context, and the ``--web.config.file`` checks before every
route. Malformed or oversized requests get a 400, 413, 431 or 501 answer and the connection is
closed; an idle keep-alive connection is closed after ``KEEPALIVE_TIMEOUT`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from opsloop.webguard import WebGuard

log = logging.getLogger("opsloop.web")

MAX_HEADER_BYTES = 16 * 1024
"""Request line plus headers (aiohttp allows 8190 bytes per line and per field)."""
MAX_BODY_BYTES = 64 * 1024
"""A GET may carry a body; it is read and ignored up to this size, larger ones get 413."""
KEEPALIVE_TIMEOUT = 75.0
"""Seconds an idle connection stays open for its next request (aiohttp's default)."""
HEADER_TIMEOUT = 30.0
"""Seconds a started request has to finish its headers and body."""
METHODS = ("GET", "HEAD")


@dataclass(slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    """Header names in lower case; a repeated header's values joined with ", "."""


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes | Iterable[bytes] = b""
    """Bytes, or an iterable of chunks streamed as they come (chunked transfer coding)."""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    compress: bool = False
    """gzip the body when the request's Accept-Encoding allows it."""


Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether ``Accept-Encoding`` lists gzip (or ``*``) with a non-zero quality."""
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            quality = params.strip().lower().removeprefix("q=")
            try:
                return not params.strip() or float(quality) > 0
            except ValueError:
                return False
    return False


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    """Method, path, version and headers of a request head (without the blank line that ends it)."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as exc:  # latin-1 decodes every byte; kept for clarity of intent
        raise BadRequest(400, "undecodable request head") from exc
    request_line, *lines = text.split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[1] or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest(400, f"malformed request line {request_line[:100]!r}")
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, f"malformed header line {line[:100]!r}")
        key = name.lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    target = parts[1].split("?", 1)[0]
    if target.startswith(("http://", "https://")):  # absolute form: the path after the authority
        target = "/" + target.split("/", 3)[3] if target.count("/") >= 3 else "/"
    return parts[0], target, parts[2], headers


class HttpServer:
    """Serves ``routes`` (path -> handler for GET and HEAD) behind ``guard``, as a ``listen.Server``."""

    def __init__(
        self, routes: dict[str, Handler], guard: WebGuard, on_start: Callable[[], Awaitable[None]] | None = None,
        on_stop: Callable[[], Awaitable[None]] | None = None,
    ) -> None:  # fmt: skip
        self.routes = routes
        self.guard = guard
        self.on_start = on_start
        self.on_stop = on_stop
        self.requests_count = 0
        """Requests begun, for tests that wait until a scrape has reached the exporter."""
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.Task[None]] = set()

    async def setup(self) -> None:
        if self.on_start is not None:
            await self.on_start()

    async def listen(self, host: str | None, port: int, ssl_context: ssl.SSLContext | None) -> None:
        server = await asyncio.start_server(self._connection, host, port, ssl=ssl_context, limit=MAX_HEADER_BYTES)
        self._servers.append(server)

    @property
    def ports(self) -> list[int]:
        return [s.getsockname()[1] for server in self._servers for s in server.sockets]

    async def cleanup(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        if self.on_stop is not None:
            await self.on_stop()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            peercert = writer.get_extra_info("peercert")
            keep_alive = True
            while keep_alive:
                keep_alive = await self._one_request(reader, writer, peercert)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError):
            pass  # the client went away or stalled: nothing to answer
        except Exception:  # a body that failed after its headers went out: only closing tells the client
            log.exception("response failed")
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peercert: dict[str, Any] | None
    ) -> bool:
        """Read and answer one request; False when the connection is to be closed."""
        async with asyncio.timeout(KEEPALIVE_TIMEOUT):
            first = await reader.read(1)  # wait for a next request without a header deadline
        if not first:
            return False
        try:
            async with asyncio.timeout(HEADER_TIMEOUT):
                head = first + await reader.readuntil(b"\r\n\r\n")
                method, path, version, headers = _parse_head(head[:-4])
                await self._skip_body(reader, headers)
        except asyncio.LimitOverrunError:
            await self._write(writer, "GET", version="HTTP/1.1", response=_error(431), keep=False)
            return False
        except BadRequest as exc:
            log.debug("bad request", extra={"status": exc.status, "error": str(exc)})
            await self._write(writer, "GET", version="HTTP/1.1", response=_error(exc.status), keep=False)
            return False
        self.requests_count += 1
        connection = headers.get("connection", "").lower()
        keep = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        response = await self._respond(Request(method, path, headers), peercert)
        if response.compress and accepts_gzip(headers.get("accept-encoding", "")):
            response.headers["Content-Encoding"] = "gzip"
            response.headers["Vary"] = "Accept-Encoding"
        else:
            response.compress = False
        await self._write(writer, method, version, response, keep)
        return keep

    async def _skip_body(self, reader: asyncio.StreamReader, headers: dict[str, str]) -> None:
        if "transfer-encoding" in headers:
            raise BadRequest(501, "request bodies with Transfer-Encoding are not supported")
        length = headers.get("content-length", "0")
        if not length.isdigit():
            raise BadRequest(400, f"invalid Content-Length {length[:20]!r}")
        if int(length) > MAX_BODY_BYTES:
            raise BadRequest(413, "request body too large")
        if int(length):
            await reader.readexactly(int(length))

    async def _respond(self, request: Request, peercert: dict[str, Any] | None) -> Response:
        if self.guard.path is not None:
            refused = await self.guard.refusal(request.headers.get("authorization", ""), peercert)
            if refused is not None:
                return Response(refused.status, refused.text.encode(), headers=dict(refused.headers))
        handler = self.routes.get(request.path)
        if handler is None:
            return _error(404)
        if request.method not in METHODS:
            return Response(405, b"405: Method Not Allowed", headers={"Allow": ", ".join(METHODS)})
        try:
            return await handler(request)
        except Exception:
            log.exception("request failed", extra={"path": request.path})
            return _error(500)

    async def _write(self, writer: asyncio.StreamWriter, method: str, version: str, response: Response,
                     keep: bool) -> None:  # fmt: skip
        """Send ``response``; a body of chunks is streamed, each chunk drained before the next is made."""
        headers = {"Content-Type": response.content_type, "Date": formatdate(usegmt=True), "Server": "opsloop"}
        headers.update(self.guard.response_headers())
        headers.update(response.headers)
        body = response.body
        if response.compress:
            body = _gzipped([body] if isinstance(body, bytes) else body)
        streamed = not isinstance(body, bytes)
        if streamed and version == "HTTP/1.0":
            keep = False  # no chunked coding: the end of the body is the end of the connection
        if not streamed:
            headers["Content-Length"] = str(len(body))
        elif version == "HTTP/1.1":
            headers["Transfer-Encoding"] = "chunked"
        headers["Connection"] = "keep-alive" if keep else "close"
        status = HTTPStatus(response.status)
        head = f"{version} {status.value} {status.phrase}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        writer.write(head.encode("latin-1") + b"\r\n")
        if method == "HEAD":
            await writer.drain()
            return
        if not streamed:
            writer.write(body)  # type: ignore[arg-type]
        else:
            chunked = version == "HTTP/1.1"
            for chunk in body:
                if chunk:
                    writer.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
                    await writer.drain()
            if chunked:
                writer.write(b"0\r\n\r\n")
        await writer.drain()


GZIP_LEVEL = 1
"""Prometheus asks for gzip on every scrape. The exposition text of 100,000 queue keys (13.6 MB) takes
about 105 ms to compress at level 1 and 260 ms at zlib's default 6, for 1.47 against 1.2 MB."""


def _gzipped(chunks: Iterable[bytes]) -> Iterable[bytes]:
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    for chunk in chunks:
        yield compressor.compress(chunk)
    yield compressor.flush()


def _error(status: int) -> Response:
    """A plain-text error answer in aiohttp's words (``404: Not Found``), so clients see what they saw."""
    return Response(status, f"{status}: {HTTPStatus(status).phrase}".encode())
