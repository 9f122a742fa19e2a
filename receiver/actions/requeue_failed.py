"""``requeue_failed`` and ``purge_failed``: repair a task framework's failed jobs in its own terms.

Moving an RQ job id from ``rq:failed:<queue>`` back to the queue list with raw commands runs the job
but leaves its hash saying ``failed`` with a stale ``enqueued_at``; moving only a Dramatiq id loses the
message body. Each framework has one small strategy here, and every job moves or goes inside one Lua
script (``failed_jobs.lua``), so it is never half-moved. Work goes in batches of BATCH jobs, so Redis
serves other clients between them; a run stops at ``max_items``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from opsloop.receiver.actions.base import ActionResult, Progress
from opsloop.receiver.actions.config import NOT_ON_CLUSTER, FailedJobsConfig, PurgeFailedConfig, RequeueFailedConfig
from opsloop.receiver.actions.placeholders import fill
from opsloop.receiver.actions.redis_action import RedisAction
from redis.asyncio import Redis

SCRIPT = (Path(__file__).parent / "failed_jobs.lua").read_text()
BATCH = 100
PURGE_WINDOW = 1000
"""RQ failed-registry entries examined per purge batch beyond the wanted count (scores are expiries)."""


def rq_time(unix: float) -> str:
    """RQ's own job-hash time format (fixed width, UTC), which also compares correctly as text."""
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Target:
    """Where one run works: the script's keys and arguments, and how to name the move in a result."""

    keys: list[str]
    args: list[str]
    source: str
    destination: str


def _target(cfg: FailedJobsConfig, values: Mapping[str, str], op: str, stamp: str) -> Target:
    queue = fill(cfg.queue, values)
    if cfg.framework == "rq":
        prefix = cfg.key_prefix
        return Target([], [f"rq_{op}", prefix, queue, stamp], f"{prefix}failed:{queue}", "the job's queue")
    if cfg.framework == "dramatiq":
        base = f"{cfg.namespace}:{queue}"
        return Target([], [f"dramatiq_{op}", cfg.namespace, queue, stamp], f"{base}.XQ", base)
    assert cfg.dlq is not None  # required for celery and list by the config
    key = f"{cfg.key_prefix}{queue}" if cfg.framework == "celery" else queue
    dead = fill(cfg.dlq, values)
    return Target([dead, key], [f"list_{op}", "", "", ""], dead, key)


async def _call(client: Redis, target: Target, dry: bool, wanted: int, *extra: str) -> tuple[int, int, int]:
    op, *rest = target.args
    reply = await client.eval(SCRIPT, len(target.keys), *target.keys, op, "1" if dry else "0", *rest, wanted, *extra)
    done, left, dangling = (int(n) for n in reply)
    return done, left, dangling


async def _in_batches(
    client: Redis,
    target: Target,
    max_items: int,
    progress: Progress,
    note: Callable[[int], str],
    window: int | None = None,
) -> tuple[int, int, int]:
    """Run ``target`` for real, BATCH jobs at a time, up to ``max_items``: (done, ids dropped, left).

    A requeue (no ``window``) moves jobs and drops ids without a job record, both out of ``max_items``, and
    goes on until a batch takes nothing. A purge counts such ids among the jobs it deletes, examines
    ``window`` entries beyond those it wants, and stops at the first batch that deletes fewer than wanted.
    ``note(done)`` is the progress note after each batch.
    """
    purge = window is not None
    done = dropped = left = 0
    while (taken := done if purge else done + dropped) < max_items:
        wanted = min(BATCH, max_items - taken)
        extra = (str(wanted + window),) if window is not None else ()
        count, left, dangling = await _call(client, target, False, wanted, *extra)
        done, dropped = done + count, dropped + dangling
        progress.note = note(done)
        if (count < wanted) if purge else (count + dangling == 0):
            break
    return done, dropped, left


class RequeueFailedAction(RedisAction[RequeueFailedConfig]):
    type = "requeue_failed"
    cluster_safe = False
    cluster_unsafe_reason = NOT_ON_CLUSTER

    async def _run(self, values: Mapping[str, str], dry_run: bool, progress: Progress) -> ActionResult:
        cfg = self.config
        target = _target(cfg, values, "requeue", rq_time(time.time()))
        route = f"{target.source} -> {target.destination}"
        async with self.connect() as client:
            if dry_run:
                count, left, _ = await _call(client, target, True, cfg.max_items)
                return ActionResult(True, f"would requeue {count} of {count + left} {cfg.framework} jobs {route}", True)
            moved, dropped, left = await _in_batches(
                client, target, cfg.max_items, progress, lambda n: f"requeued {n} {cfg.framework} jobs {route}"
            )
        return ActionResult(True, f"requeued {moved} {cfg.framework} jobs {route}{_tail(left, dropped, cfg.max_items)}")


class PurgeFailedAction(RedisAction[PurgeFailedConfig]):
    type = "purge_failed"
    cluster_safe = False
    cluster_unsafe_reason = NOT_ON_CLUSTER

    async def _run(self, values: Mapping[str, str], dry_run: bool, progress: Progress) -> ActionResult:
        cfg = self.config
        cutoff = time.time() - cfg.older_than
        stamp = rq_time(cutoff) if cfg.framework == "rq" else str(int(cutoff * 1000))
        target = _target(cfg, values, "purge", stamp)
        older = f"failed more than {cfg.older_than:g}s ago"
        async with self.connect() as client:
            if dry_run:
                count, left, _ = await _call(client, target, True, cfg.max_items, str(cfg.max_items + PURGE_WINDOW))
                return ActionResult(
                    True, f"would delete {count} {cfg.framework} jobs {older} from {target.source}", True
                )
            note = f"{cfg.framework} jobs from {target.source}"
            deleted, dropped, left = await _in_batches(
                client, target, cfg.max_items, progress, lambda n: f"deleted {n} {note}", window=PURGE_WINDOW
            )
        return ActionResult(
            True, f"deleted {deleted} {cfg.framework} jobs {older} from {target.source}{_tail(left, dropped, 0)}"
        )


def _tail(left: int, dropped: int, cap: int) -> str:
    parts = [f"{dropped} ids without a job record dropped"] if dropped else []
    if left:
        parts.append(f"{left} left" + (f", max_items {cap} reached" if cap else ""))
    return f" ({'; '.join(parts)})" if parts else ""
