"""``ParentLink`` and ``processes_flag``, directly: a process of ``--processes`` stops once its parent is gone.

Each test holds both ends of a real socket pair, as the parent and one of its processes do, and sees
the SIGTERM the link sends this very process through a handler of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
from opsloop.receiver.processes import LINK_ENV, MAX_PROCESSES, READY, ParentLink, processes_flag


class Terminated:
    """SIGTERM to this process, caught instead of ending it."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.event.wait(), seconds)
        except TimeoutError:
            return False
        return True


@pytest.fixture
async def terminated() -> AsyncIterator[Terminated]:
    caught = Terminated()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, caught.event.set)
    yield caught
    loop.remove_signal_handler(signal.SIGTERM)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(the parent's end, the process's end)"""
    parent, child = socket.socketpair()
    yield parent, child
    parent.close()
    child.close()


def ready(pair: tuple[socket.socket, socket.socket]) -> socket.socket:
    """The process's link made ready, and its word read on the parent's end; returns that end."""
    parent, child = pair
    ParentLink(child).ready()
    assert parent.recv(64) == READY
    return parent


async def test_ready_tells_the_parent_and_a_closed_parent_end_stops_the_process(
    pair: tuple[socket.socket, socket.socket], terminated: Terminated, caplog: pytest.LogCaptureFixture
) -> None:
    parent = ready(pair)
    assert not await terminated.within(0.2)
    assert not caplog.records
    parent.close()
    assert await terminated.within(5)
    said = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert said == [("opsloop.receiver.processes", "ERROR", "the receiver's parent process is gone: stopping")]


async def test_a_parent_that_ends_without_reading_stops_the_process_too(
    pair: tuple[socket.socket, socket.socket], terminated: Terminated
) -> None:
    """Unread data in the parent's end makes the kernel reset the pair when it closes: gone as well."""
    parent, child = pair
    ParentLink(child).ready()
    parent.close()  # READY still unread
    assert await terminated.within(5)


async def test_bytes_from_the_parent_are_ignored(
    pair: tuple[socket.socket, socket.socket], terminated: Terminated
) -> None:
    parent = ready(pair)
    parent.sendall(b"hello")
    assert not await terminated.within(0.3)
    parent.close()
    assert await terminated.within(5)


def test_the_link_comes_from_the_environment_once(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, child = pair
    monkeypatch.setenv(LINK_ENV, str(os.dup(child.fileno())))
    link = ParentLink.from_env()
    assert link is not None
    assert LINK_ENV not in os.environ  # not for a process this one starts in turn
    assert ParentLink.from_env() is None
    link._sock.close()
    monkeypatch.setenv(LINK_ENV, "not a descriptor")
    assert ParentLink.from_env() is None


@pytest.mark.parametrize("value", ["1", "2", str(MAX_PROCESSES)])
def test_processes_flag_takes_one_to_the_maximum(value: str) -> None:
    assert processes_flag(value) == int(value)


@pytest.mark.parametrize("value", ["0", str(MAX_PROCESSES + 1), "-1", "2.0", "", "two"])
def test_processes_flag_refuses_anything_else(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=f"from 1 to {MAX_PROCESSES}, got {value!r}"):
        processes_flag(value)
