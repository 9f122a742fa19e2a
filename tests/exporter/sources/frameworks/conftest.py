"""Real framework workers for the framework source tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opsloop.testsupport.servers import RedisServer

from tests.frameworkjobs.workers import Workers


@pytest.fixture
def workers(redis_server: RedisServer, tmp_path: Path) -> Iterator[Workers]:
    running = Workers(redis_server.url, tmp_path)
    yield running
    running.close()
