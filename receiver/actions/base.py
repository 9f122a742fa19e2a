"""What every action shares: the result type, the protocol the core calls, and the run envelope.

The envelope (``BaseAction.run``) gives each action the same guarantees: it never runs past its
``timeout``, an operational failure becomes ``ActionResult(ok=False)`` instead of an exception, partial
progress is reported when it stops early, and every run is logged once.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypeVar

from opsloop.receiver.actions.config import ActionBaseConfig
from opsloop.receiver.actions.placeholders import TemplateError

log = logging.getLogger(__name__)

C = TypeVar("C", bound=ActionBaseConfig)


@dataclass(frozen=True)
class ActionResult:
    """The outcome of one run; ``detail`` is short human text for history and notifications."""

    ok: bool
    detail: str
    dry_run: bool = False

    def __post_init__(self) -> None:
        # Details quote program output and HTTP bodies; a NUL byte there would make PostgreSQL refuse the
        # whole record (text columns cannot hold it), losing the result. Every result passes through here.
        if "\x00" in self.detail:
            object.__setattr__(self, "detail", self.detail.replace("\x00", ""))


class Action(Protocol):
    type: str

    async def run(self, values: Mapping[str, str], *, dry_run: bool = False) -> ActionResult: ...

    async def close(self) -> None: ...


@dataclass
class Progress:
    """What a run has done so far, so a timeout or failure can say how far it got."""

    note: str = ""

    def explain(self, reason: str) -> str:
        return f"{reason}; {self.note}" if self.note else reason


def seconds(value: float) -> str:
    """``10.0`` -> ``10s``, ``0.25`` -> ``0.25s``."""
    return f"{value:g}s"


class BaseAction(abc.ABC, Generic[C]):
    """Runs ``_run`` under the action's timeout and turns the listed failures into results."""

    type: ClassVar[str]
    failures: ClassVar[tuple[type[Exception], ...]]
    """Exceptions that mean the operation failed (connection refused, server error), not a bug."""

    def __init__(self, config: C) -> None:
        self.config = config

    async def run(self, values: Mapping[str, str], *, dry_run: bool = False) -> ActionResult:
        dry = dry_run or self.config.dry_run
        progress = Progress()
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.config.timeout):
                result = await self._run(values, dry, progress)
        except TimeoutError:
            result = ActionResult(False, progress.explain(f"timed out after {seconds(self.config.timeout)}"), dry)
        except (TemplateError, *self.failures) as exc:
            result = ActionResult(False, progress.explain(f"{type(exc).__name__}: {exc}"), dry)
        log.log(
            logging.INFO if result.ok else logging.WARNING,
            "action finished",
            extra={
                "action": self.type,
                "ok": result.ok,
                "dry_run": result.dry_run,
                "seconds": round(time.monotonic() - started, 3),
                "detail": result.detail,
            },
        )
        return result

    @abc.abstractmethod
    async def _run(self, values: Mapping[str, str], dry_run: bool, progress: Progress) -> ActionResult:
        """Do (or, when ``dry_run``, describe) the work; raise one of ``failures`` when it fails."""

    async def close(self) -> None:
        """Nothing to release: each run opens and closes its own connections."""
