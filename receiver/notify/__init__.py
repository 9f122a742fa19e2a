"""Notifiers: Slack (incoming webhooks or app mode) and SMTP email, built from the ``notifiers:`` section."""

from __future__ import annotations

from pathlib import Path

from opsloop.receiver.domain import notifier_key
from opsloop.receiver.notify.base import (
    HistoryEntry,
    Notification,
    Notifier,
    PermanentError,
    TransientError,
)
from opsloop.receiver.notify.config import NotifiersConfig
from opsloop.receiver.notify.email import EmailNotifier
from opsloop.receiver.notify.slack import Pacer, SlackNotifier
from opsloop.receiver.notify.slack_app import MemoryRefs, SlackAppNotifier
from prometheus_client import Counter

__all__ = [
    "HistoryEntry",
    "Notification",
    "Notifier",
    "NotifierSetupError",
    "NotifiersConfig",
    "PermanentError",
    "TransientError",
    "build_notifiers",
]


class NotifierSetupError(ValueError):
    """A notifier cannot be built: unreadable secret, bad webhook URL or a template that won't compile."""


def build_notifiers(
    config: NotifiersConfig, templates_dir: Path | None = None, failures: Counter | None = None
) -> dict[str, Notifier]:
    """Every configured notifier by key (``slack/<name>``, ``email/<name>``).

    ``templates_dir`` holds templates that replace the built-in ones of the same file name. Notifiers
    posting to the same Slack webhook URL, or to the same channel in app mode, share one pacer, so together
    they stay at one message a second. ``failures`` is the app's template-failure counter
    (``ReceiverMetrics.template_failures``).
    """
    notifiers: dict[str, Notifier] = {}
    pacers: dict[str, Pacer] = {}
    for slack in config.slack:
        key = notifier_key("slack", slack.name)
        try:
            if slack.app_mode:
                pacer = pacers.setdefault(f"{slack.api_url}#{slack.channel}", Pacer())
                notifiers[key] = SlackAppNotifier.from_config(slack, pacer, MemoryRefs(), templates_dir, failures)
            else:
                pacer = pacers.setdefault(slack.resolve_url(), Pacer())
                notifiers[key] = SlackNotifier.from_config(slack, pacer, templates_dir, failures)
        except ValueError as exc:
            raise NotifierSetupError(f"{key}: {exc}") from None
    for email in config.email:
        key = notifier_key("email", email.name)
        try:
            notifiers[key] = EmailNotifier.from_config(email, templates_dir, failures)
        except ValueError as exc:
            raise NotifierSetupError(f"{key}: {exc}") from None
    return notifiers
