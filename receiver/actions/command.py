"""``command``: run a program from an argv list, without a shell, in its own process group.

Label values only ever become whole argv elements or environment variable values, so shell syntax in a
value (``$(rm -rf /)``, ``; reboot``) is inert text. The child gets a small environment (``pass_env``
plus ``env``), not the receiver's, which holds secrets. The process group is SIGKILLed on timeout, and
also when the program exits, so no helper it started outlives the run.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
from collections.abc import Mapping
from contextlib import suppress
from typing import ClassVar

from opsloop.receiver.actions.base import ActionResult, BaseAction, Progress
from opsloop.receiver.actions.config import CommandConfig
from opsloop.receiver.actions.placeholders import fill

_TAIL_BYTES = 4096
_TAIL_CHARS = 300
_DRAIN_SECONDS = 1.0


def kill_group(pgid: int) -> None:
    """SIGKILL every process left in the group; a group already gone is fine."""
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


class CommandProtocol(asyncio.SubprocessProtocol):
    """Keeps the output tail in bounded memory and signals the program's exit.

    ``process_exited`` fires when the program itself ends, even while a helper it left behind still holds
    the output pipe (``Process.wait()`` would wait for that helper too).
    """

    def __init__(self, progress: Progress) -> None:
        loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[None] = loop.create_future()
        self.drained: asyncio.Future[None] = loop.create_future()
        self._data = bytearray()
        self._progress = progress

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._progress.note = "process group killed"  # what a timeout means once the program runs

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self._data += data
        del self._data[:-_TAIL_BYTES]
        self._progress.note = f"process group killed; output: {self.tail()}"

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if not self.drained.done():
            self.drained.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def tail(self) -> str:
        return " ".join(self._data.decode(errors="replace").split())[-_TAIL_CHARS:]


class CommandAction(BaseAction[CommandConfig]):
    type = "command"
    failures: ClassVar[tuple[type[Exception], ...]] = (OSError, ValueError)

    async def _run(self, values: Mapping[str, str], dry_run: bool, progress: Progress) -> ActionResult:
        cfg = self.config
        argv = [fill(arg, values) for arg in cfg.argv]
        extra = {name: fill(template, values) for name, template in cfg.env.items()}
        if dry_run:
            env_note = f" with {', '.join(f'{k}={v!r}' for k, v in extra.items())}" if extra else ""
            return ActionResult(True, f"would run {shlex.join(argv)}{env_note}", True)
        env = {name: os.environ[name] for name in cfg.pass_env if name in os.environ} | extra
        transport, protocol = await asyncio.get_running_loop().subprocess_exec(
            lambda: CommandProtocol(progress),
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cfg.cwd,
            start_new_session=True,
        )
        try:
            await asyncio.shield(protocol.exited)
        finally:
            kill_group(transport.get_pid())
            # the last output arrives once the group is gone; a helper that left the group must not hold us
            await asyncio.wait({protocol.exited, protocol.drained}, timeout=_DRAIN_SECONDS)
            transport.close()
        code = transport.get_returncode()
        assert code is not None  # the program has exited
        outcome = f"exit {code}" if code >= 0 else f"killed by signal {-code}"
        output = protocol.tail()
        return ActionResult(code == 0, f"{argv[0]} {outcome}" + (f": {output}" if output else ""))
