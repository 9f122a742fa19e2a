"""A plan's verify query, asked of a real Prometheus: what "holds" means for each result type.

Prometheus itself is the oracle: the expressions below give a vector, an empty vector, a scalar, a string
or an error there, and the verdict and its detail must follow what Prometheus answered.
"""

from __future__ import annotations

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

    async def answer(_: web.Request) -> web.Response:
        return web.Response(text=body)

    app = web.Application()
    app.router.add_get("/api/v1/query", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as client:
            ok, said = await Verifier(client, f"http://{LOOPBACK}:{port}", timeout=5).holds("vector(1)")
    finally:
        await runner.cleanup()
    assert ok is False
    assert said.startswith(detail)


def test_placeholders_are_filled_escaped_and_promql_braces_kept() -> None:
    assert promql_string('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    assert fill_query('x{q="{name}"} > {n}', {"name": 'a"b', "n": "1"}) == 'x{q="a\\"b"} > 1'
    assert fill_query("{_a1}{b}", {"_a1": "x", "b": "y"}) == "xy"
    assert fill_query("{1a} {a-b} {}", {}) == "{1a} {a-b} {}"
