"""Exporter fixtures: write a config file and serve it through aiohttp's test client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient
from opsloop.exporter.app import create_app
from opsloop.exporter.config import ExporterConfig, load_config


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[dict[str, Any]], ExporterConfig]:
    def write(data: dict[str, Any]) -> ExporterConfig:
        path = tmp_path / "exporter.yml"
        path.write_text(yaml.safe_dump(data))
        return load_config(path)

    return write


@pytest.fixture
def exporter_client(aiohttp_client: Any) -> Callable[[ExporterConfig], Awaitable[TestClient]]:
    async def start(config: ExporterConfig) -> TestClient:
        return await aiohttp_client(create_app(config))

    return start
