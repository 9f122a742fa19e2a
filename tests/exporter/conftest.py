"""Exporter fixtures: write a config file and serve it on a loopback port, scraped with aiohttp's client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from opsloop.exporter.app import create_app
from opsloop.exporter.config import ExporterConfig, load_config

from tests.exporter.scrapes import ExporterClient


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[dict[str, Any]], ExporterConfig]:
    def write(data: dict[str, Any]) -> ExporterConfig:
        path = tmp_path / "exporter.yml"
        path.write_text(yaml.safe_dump(data))
        return load_config(path)

    return write


@pytest.fixture
async def exporter_client() -> AsyncIterator[Callable[[ExporterConfig], Awaitable[ExporterClient]]]:
    started: list[ExporterClient] = []

    async def start(config: ExporterConfig) -> ExporterClient:
        server = create_app(config)
        await server.setup()
        await server.listen("127.0.0.1", 0, None)
        started.append(ExporterClient(server, aiohttp.ClientSession()))
        return started[-1]

    yield start
    for client in started:
        await client.session.close()
        await client.server.cleanup()
