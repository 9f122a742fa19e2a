"""opsloop's own services as child processes on loopback, for the tests and the benchmarks.

A service runs as ``python -m opsloop.<program>`` in its own process group (``ManagedProcess``), so a
test can SIGKILL it like a crash and a benchmark measures it apart from the load it gets.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from opsloop.testsupport.servers import LOOPBACK, ManagedProcess, free_port, http_ok


def spawn_service(
    program: str, config: Path, port: int, workdir: Path, *extra: str, name: str | None = None
) -> ManagedProcess:
    """``opsloop.<program>`` on ``config`` and ``LOOPBACK:port``, once it answers ``/-/ready``.

    ``name`` names the process and its log in ``workdir`` (default: ``program``). A process that never
    gets ready is stopped before the error is raised: no server is left behind.
    """
    process = ManagedProcess(name or program, workdir)
    process.spawn([sys.executable, "-m", f"opsloop.{program}", "--config", str(config),
                   "--web.listen-address", f"{LOOPBACK}:{port}", *extra])  # fmt: skip
    try:
        process.wait_ready(lambda: http_ok(f"http://{LOOPBACK}:{port}/-/ready"), timeout=30)
    except BaseException:
        process.stop()
        raise
    return process


@contextmanager
def running_receiver(config: dict[str, Any], workdir: Path, *extra: str) -> Iterator[str]:
    """A receiver on ``config`` (written to ``workdir/receiver.yml``) on a free port for the ``with``
    block; yields its base URL and stops it (process group and all) on the way out."""
    path = workdir / "receiver.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    process = spawn_service("receiver", path, port, workdir, *extra)
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        process.stop()
