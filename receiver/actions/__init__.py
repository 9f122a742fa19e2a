"""Built-in recovery actions: Redis DLQ requeue, framework requeue/purge of failed jobs, cache clear,
flags, HTTP hooks, commands and SQL.

The core builds each configured action once (``build_action``) and runs it with label values it has
already validated against the plan's regexes; ``template_fields`` tells it which names an action needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opsloop.receiver.actions.base import Action, ActionResult
from opsloop.receiver.actions.cache_clear import CacheClearAction
from opsloop.receiver.actions.command import CommandAction
from opsloop.receiver.actions.config import ActionConfig
from opsloop.receiver.actions.dlq_requeue import DlqRequeueAction
from opsloop.receiver.actions.http import HttpAction
from opsloop.receiver.actions.redis_set import RedisSetAction
from opsloop.receiver.actions.requeue_failed import PurgeFailedAction, RequeueFailedAction
from opsloop.receiver.actions.sql import SqlAction
from opsloop.receiver.store import MoveJournal

_ACTIONS: dict[str, Callable[..., Action]] = {
    cls.type: cls
    for cls in (
        DlqRequeueAction, CacheClearAction, RedisSetAction, HttpAction, CommandAction, SqlAction,
        RequeueFailedAction, PurgeFailedAction,
    )
}  # fmt: skip


def build_action(config: ActionConfig) -> Action:
    """The action for one config entry. Secrets are read now, so a missing one fails at startup
    (``opsloop.secrets.SecretError``, a ValueError), as does a malformed Redis URL (ValueError)."""
    return _ACTIONS[config.type](config)


async def attach_journal(actions: Iterable[Action], journal: MoveJournal) -> None:
    """Give the actions that move items between cluster slots the receiver's store, and let them settle
    the moves a crash interrupted."""
    for action in actions:
        if isinstance(action, DlqRequeueAction):
            await action.use_journal(journal)


def template_fields(config: ActionConfig) -> set[str]:
    """Every ``{name}`` (or SQL ``%(name)s``) an action's templates use."""
    return config.template_fields()


__all__ = ["Action", "ActionConfig", "ActionResult", "attach_journal", "build_action", "template_fields"]
