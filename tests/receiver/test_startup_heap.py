"""The service leaves its start-up heap out of later garbage collections (full collections walked it
again and again, holding the GIL for 100-160 ms under load and stalling every acknowledgement)."""

from __future__ import annotations

import gc
from pathlib import Path

from aiohttp import web
from opsloop.receiver.__main__ import service_app
from opsloop.receiver.app import Components
from opsloop.receiver.config import load_config
from opsloop.receiver.handlers import STATE

from tests.receiver.harness import write_config


async def test_the_service_freezes_its_start_up_heap_once_the_store_is_open(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    app = service_app(config, Components.build(config), "/metrics")
    gc.unfreeze()
    runner = web.AppRunner(app)
    try:
        assert gc.get_freeze_count() == 0
        await runner.setup()  # the app's start-up: the store opens, then the heap is frozen
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # this process's modules, config and open store, as Python counts them
        store = app[STATE].store
        assert store is not None
        assert not any(tracked is store for tracked in gc.get_objects())  # frozen with the rest: open first
        gc.collect(2)
        assert gc.get_freeze_count() == frozen  # a full collection neither walks nor frees them
    finally:
        await runner.cleanup()
        gc.unfreeze()  # the rest of the test session collects as usual
