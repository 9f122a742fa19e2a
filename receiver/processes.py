"""``--processes N``: one receiver run as N processes on the same addresses, to use more than one core.

A receiver process acknowledges webhooks as fast as its one interpreter lock lets it (on PostgreSQL
about 0.8 of a core). N processes on one PostgreSQL store are N replicas that share the listening
addresses (``SO_REUSEPORT``: the kernel spreads new connections over them) and one metrics directory
(prometheus-client's multiprocess mode), so Alertmanager and Prometheus still see one receiver.

The parent serves nothing itself. It first listens on each address alone, as one process would, and
stops with exit status 1 if it cannot: with ``SO_REUSEPORT`` alone, a second receiver of the same user
started on the same address would silently share its connections with the first. Then it starts the
processes and waits until each listens, passes SIGHUP on, starts a new process in place of one that
dies (the newcomer takes over its leases at once, see ``takeover``), and on SIGTERM or SIGINT stops
them all. A process that ends before it listens ends the whole receiver with exit status 1.

Each process holds one end of a socket pair whose other end the parent keeps: it writes ``ready`` on
it once it listens, and stops by itself when the parent's end closes, so even a parent killed with
SIGKILL leaves no receiver process behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass

from opsloop.listen import parse_listen_address

log = logging.getLogger("opsloop.receiver.processes")

LINK_ENV = "OPSLOOP_RECEIVER_LINK"
"""Set in each process the parent starts: the file descriptor of its end of the socket pair."""
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client's own variable: where each process writes its counters (read at its import)."""
READY = b"ready\n"
MAX_PROCESSES = 64
STOP_GRACE = 30.0
"""Seconds a process has to finish its shutdown after SIGTERM before it is killed."""
RESTART_PAUSE = 1.0
"""At least this long between two starts in one place, so a process that keeps dying cannot spin."""


def processes_flag(value: str) -> int:
    """argparse ``type=`` for ``--processes``."""
    if not value.isdigit() or not 1 <= int(value) <= MAX_PROCESSES:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {MAX_PROCESSES}, got {value!r}")
    return int(value)


def processes_problem(count: int, store_url: str) -> str | None:
    """Why this store cannot be shared by ``count`` processes, if it cannot."""
    if count > 1 and store_url.startswith("sqlite:"):
        return f"store: --processes {count} needs a PostgreSQL store (a SQLite store is written by one process)"
    return None


class ParentLink:
    """A started process's end of its socket pair: says when it listens, notices when the parent is gone."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    @classmethod
    def from_env(cls) -> ParentLink | None:
        """The link this process was started with, or None when it was not started by a parent."""
        fd = os.environ.pop(LINK_ENV, "")  # not for anything this process starts in turn
        if not fd.isdigit():
            return None
        return cls(socket.socket(fileno=int(fd)))

    def ready(self) -> None:
        """Tell the parent this process listens; from now on, stop when the parent's end closes."""
        self._sock.sendall(READY)
        self._sock.setblocking(False)
        asyncio.get_running_loop().add_reader(self._sock, self._parent_gone)

    def _parent_gone(self) -> None:
        try:
            said = self._sock.recv(64)
        except BlockingIOError:
            return  # woken with nothing to read
        except OSError:  # reset: gone as well
            said = b""
        if said:
            return  # the parent sends nothing: ignore anything that does arrive
        asyncio.get_running_loop().remove_reader(self._sock)
        log.error("the receiver's parent process is gone: stopping")
        os.kill(os.getpid(), signal.SIGTERM)  # the same orderly shutdown as a SIGTERM from outside


@dataclass
class Child:
    """One started process, its end of the link on the parent's side and when it was started."""

    index: int
    process: asyncio.subprocess.Process
    link: socket.socket
    started: float


async def nobody_listens(addresses: list[str]) -> bool:
    """Listen on each address alone, then stop; False (with the one-line error) when one cannot be bound."""
    loop = asyncio.get_running_loop()
    for address in addresses:
        host, port = parse_listen_address(address)
        try:
            probe = await loop.create_server(asyncio.Protocol, host, port)
        except OSError as exc:
            log.error("cannot listen", extra={"address": address, "error": exc.strerror or str(exc)})
            return False
        probe.close()
        await probe.wait_closed()
    return True


class Supervisor:
    """Runs ``count`` receiver processes on ``argv`` (this program's own arguments) until told to stop."""

    def __init__(self, argv: list[str], count: int, addresses: list[str]) -> None:
        self.argv = argv
        self.count = count
        self.addresses = addresses
        self.children: dict[int, Child] = {}
        self.stopping = asyncio.Event()

    async def run(self) -> int:
        """Exit status: 0 after SIGTERM or SIGINT, 1 when an address is taken or a process ended before it
        listened."""
        if not await nobody_listens(self.addresses):
            return 1
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self._signal_all, signal.SIGHUP)
        try:
            with tempfile.TemporaryDirectory(prefix="opsloop-receiver-metrics-") as shared:
                try:
                    return await self._keep_running(shared)
                finally:
                    await self._stop_all()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    async def _keep_running(self, shared: str) -> int:
        started = await asyncio.gather(*(self._start(index, shared) for index in range(self.count)))
        if not all(started):
            return 0 if self.stopping.is_set() else 1
        log.info("receiver processes listening", extra={"processes": self.count})
        stop = asyncio.create_task(self.stopping.wait())
        try:
            while True:
                exits = {asyncio.create_task(child.process.wait()): child for child in self.children.values()}
                done, _ = await asyncio.wait([stop, *exits], return_when=asyncio.FIRST_COMPLETED)
                for task in exits:
                    task.cancel()
                if stop in done:
                    return 0
                for task in done:
                    child = exits[task]
                    log.error(
                        "receiver process ended: starting another in its place",
                        extra={"index": child.index, "pid": child.process.pid, "status": child.process.returncode},
                    )  # fmt: skip
                    child.link.close()
                    del self.children[child.index]
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stopping.wait(), child.started + RESTART_PAUSE - time.monotonic())
                    if self.stopping.is_set() or not await self._start(child.index, shared):
                        return 0 if self.stopping.is_set() else 1
        finally:
            stop.cancel()

    async def _start(self, index: int, shared: str) -> bool:
        """Start process ``index`` and wait until it listens; False when it ended first (or on a stop)."""
        mine, theirs = socket.socketpair()
        env = {**os.environ, LINK_ENV: str(theirs.fileno()), METRICS_ENV: shared}
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "opsloop.receiver", *self.argv, env=env, pass_fds=(theirs.fileno(),)
            )
        finally:
            theirs.close()
        self.children[index] = Child(index, process, mine, time.monotonic())
        mine.setblocking(False)
        said = asyncio.create_task(asyncio.get_running_loop().sock_recv(mine, len(READY)))
        ended = asyncio.create_task(process.wait())
        stop = asyncio.create_task(self.stopping.wait())
        await asyncio.wait([said, ended, stop], return_when=asyncio.FIRST_COMPLETED)
        for task in (said, ended, stop):
            task.cancel()
        if said.done() and not said.cancelled() and said.exception() is None and said.result() == READY:
            log.info("receiver process started", extra={"index": index, "pid": process.pid})
            return True
        if not self.stopping.is_set():
            await process.wait()
            log.error(
                "receiver process ended before it listened: stopping the receiver",
                extra={"index": index, "pid": process.pid, "status": process.returncode},
            )  # fmt: skip
        return False

    def _signal_all(self, sig: signal.Signals) -> None:
        for child in self.children.values():
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(sig)

    async def _stop_all(self) -> None:
        """SIGTERM to every process; SIGKILL to any still running ``STOP_GRACE`` seconds later."""
        running = [child for child in self.children.values() if child.process.returncode is None]
        self._signal_all(signal.SIGTERM)
        for child in running:
            try:
                status = await asyncio.wait_for(child.process.wait(), STOP_GRACE)
            except TimeoutError:
                log.error("receiver process did not stop: killing it", extra={"pid": child.process.pid})
                child.process.kill()
                status = await child.process.wait()
            if status != 0:
                log.warning("receiver process stopped uncleanly", extra={"pid": child.process.pid, "status": status})
        for child in self.children.values():
            child.link.close()
        self.children.clear()
