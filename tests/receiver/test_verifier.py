"""A plan's verify query, asked of a real Prometheus: what "holds" means for each result type.

Prometheus itself is the oracle: the expressions below give a vector, an empty vector, a scalar, a string
or an error there, and the verdict and its detail must follow what Prometheus answered.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from aiohttp import web
from opsloop.receiver.recovery import Verifier, fill_query, promql_string
from opsloop.testsupport.servers import LOOPBACK, PrometheusServer


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    with PrometheusServer({}) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def series(count: int) -> str:
    """``count`` one-sample series, values 1..count, told apart by an ``i`` label."""
    return " or ".join(f'label_replace(vector({i}), "i", "{i}", "", "")' for i in range(1, count + 1))


@pytest.mark.parametrize(
    ("query", "holds", "detail"),
    [
        ("vector(3)", True, "verify holds: vector(3) -> [3]"),
        ("vector(3) < 2", False, "verify does not hold yet: vector(3) < 2 -> []"),
        ("scalar(vector(2))", True, "verify holds: scalar(vector(2)) -> [2]"),
        ("scalar(vector(0))", False, "verify does not hold yet: scalar(vector(0)) -> [0]"),
        ('"up"', True, 'verify holds: "up" -> [up]'),
        ('""', False, 'verify does not hold yet: "" -> []'),
        (series(5), True, f"verify holds: {series(5)} -> [1, 2, 3, 4, 5]"),
        (series(6), True, f"verify holds: {series(6)} -> [1, 2, 3, 4, 5] (+1 more)"),
        (series(7), True, f"verify holds: {series(7)} -> [1, 2, 3, 4, 5] (+2 more)"),
    ],
)
async def test_verdict_follows_prometheus_answer(
    prometheus: PrometheusServer, session: aiohttp.ClientSession, query: str, holds: bool, detail: str
) -> None:
    # trailing slashes in the configured URL are fine
    verifier = Verifier(session, prometheus.url + "/", timeout=5)
    assert await verifier.holds(query) == (holds, detail)


async def test_a_query_prometheus_refuses_does_not_hold_and_says_why(
    prometheus: PrometheusServer, session: aiohttp.ClientSession
) -> None:
    async with session.get(f"{prometheus.url}/api/v1/query", params={"query": "sum("}) as resp:
        error = (await resp.json())["error"]
    assert await Verifier(session, prometheus.url, timeout=5).holds("sum(") == (
        False,
        f"prometheus query failed: {error}"[:225],
    )


async def test_an_unreachable_prometheus_does_not_hold() -> None:
    with socket.socket() as unused:
        unused.bind((LOOPBACK, 0))  # bound, never listening: connections are refused
        port = unused.getsockname()[1]
        async with aiohttp.ClientSession() as client:
            ok, detail = await Verifier(client, f"http://{LOOPBACK}:{port}", timeout=5).holds("vector(1)")
    assert ok is False
    assert detail.startswith("prometheus query failed: ClientConnectorError: Cannot connect to host")


async def test_a_prometheus_that_never_answers_does_not_hold_after_the_timeout() -> None:
    release = asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await release.wait()  # no answer before the verifier gave up: only its timeout ends the wait
        writer.close()

    server = await asyncio.start_server(never_answer, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        # the outer bound only turns a verifier that would wait forever into a quick failure
        async with aiohttp.ClientSession() as client, asyncio.timeout(30):
            verdict = await Verifier(client, f"http://{LOOPBACK}:{port}", timeout=0.2).holds("vector(1)")
    finally:
        release.set()
        server.close()
    assert verdict == (False, "prometheus query failed: TimeoutError: ")


def test_the_query_endpoint_is_under_the_configured_path() -> None:
    """A Prometheus behind a path prefix: only trailing slashes are dropped from it."""
    assert Verifier(None, "http://prom:9090/metriX/", timeout=1).url == "http://prom:9090/metriX/api/v1/query"  # type: ignore[arg-type]


async def verdict_on(body: str) -> tuple[bool, str]:
    """The verdict on ``vector(1)`` when the query endpoint answers ``body``."""

    async def answer(_: web.Request) -> web.Response:
        return web.Response(text=body)

    app = web.Application()
    app.router.add_get("/api/v1/query", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, LOOPBACK, 0).start()
    try:
        async with aiohttp.ClientSession() as client:
            return await Verifier(client, f"http://{LOOPBACK}:{runner.addresses[0][1]}", timeout=5).holds("vector(1)")
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ("not json", "prometheus query failed: JSONDecodeError: "),
        ('["success"]', "prometheus query failed: ['success']"),
        ('{"status": "success", "data": {}}', "prometheus answered without a usable result: "),
        ('{"status": "success", "data": {"resultType": "scalar", "result": []}}', "prometheus answered without a "),
    ],
)
async def test_answers_that_are_not_prometheus_results_do_not_hold(body: str, detail: str) -> None:
    """A proxy or another service on Prometheus' address: never a verdict of "holds"."""
    ok, said = await verdict_on(body)
    assert ok is False
    assert said.startswith(detail)


async def test_an_error_text_or_unusable_answer_is_cut_to_200_characters() -> None:
    body = json.dumps({"status": "error", "error": "e" * 199 + "fg"})
    assert await verdict_on(body) == (False, "prometheus query failed: " + "e" * 199 + "f")
    start = "{'status': 'success', 'data': {'x': '"  # the answer as Python prints it
    body = json.dumps({"status": "success", "data": {"x": "y" * (199 - len(start)) + "fg"}})
    assert await verdict_on(body) == (
        False,
        "prometheus answered without a usable result: " + start + "y" * (199 - len(start)) + "f",
    )


def test_placeholders_are_filled_escaped_and_promql_braces_kept() -> None:
    assert promql_string('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    assert fill_query('x{q="{name}"} > {n}', {"name": 'a"b', "n": "1"}) == 'x{q="a\\"b"} > 1'
    assert fill_query("{_a1}{b}", {"_a1": "x", "b": "y"}) == "xy"
    assert fill_query("{1a} {a-b} {}", {}) == "{1a} {a-b} {}"
