"""Notifiers: Slack (incoming webhooks or app mode) and SMTP email, built from the ``notifiers:`` section."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from opsloop.receiver.domain import notifier_key
from opsloop.receiver.notify.base import (
    HistoryEntry,
    Notification,
    Notifier,
    PermanentError,
    TransientError,
)
from opsloop.receiver.notify.config import NotifiersConfig, SlackConfig
from opsloop.receiver.notify.email import EmailNotifier
from opsloop.receiver.notify.render import TemplateConfigError
from opsloop.receiver.notify.slack import Pacer, SlackNotifier
from opsloop.receiver.notify.slack_app import MemoryRefs, SlackAppNotifier
from prometheus_client import Counter
from pydantic import BaseModel

from opsloop.configfile import Loc, key_path, secret_problems

__all__ = [
    "HistoryEntry",
    "Notification",
    "Notifier",
    "NotifierSetupError",
    "NotifiersConfig",
    "PermanentError",
    "TransientError",
    "build_notifiers",
    "notifier_problems",
]


class NotifierSetupError(ValueError):
    """A notifier cannot be built: unreadable secret, bad webhook URL or a template that won't compile."""


def _slack(
    slack: SlackConfig, pacers: dict[str, Pacer], templates_dir: Path | None, failures: Counter | None
) -> Notifier:
    """One Slack notifier; notifiers posting to the same webhook URL or app-mode channel share a pacer."""
    if slack.app_mode:
        pacer = pacers.setdefault(f"{slack.api_url}#{slack.channel}", Pacer())
        return SlackAppNotifier.from_config(slack, pacer, MemoryRefs(), templates_dir, failures)
    pacer = pacers.setdefault(slack.resolve_url(), Pacer())
    return SlackNotifier.from_config(slack, pacer, templates_dir, failures)


def _builders(
    config: NotifiersConfig, templates_dir: Path | None, failures: Counter | None
) -> Iterator[tuple[Loc, BaseModel, str, Callable[[], Notifier]]]:
    """(key path, config entry, notifier key, build) for every configured notifier, in file order."""
    pacers: dict[str, Pacer] = {}
    for i, slack in enumerate(config.slack):
        build = partial(_slack, slack, pacers, templates_dir, failures)
        yield ("notifiers", "slack", i), slack, notifier_key("slack", slack.name), build
    for i, email in enumerate(config.email):
        build = partial(EmailNotifier.from_config, email, templates_dir, failures)
        yield ("notifiers", "email", i), email, notifier_key("email", email.name), build


def build_notifiers(
    config: NotifiersConfig, templates_dir: Path | None = None, failures: Counter | None = None
) -> dict[str, Notifier]:
    """Every configured notifier by key (``slack/<name>``, ``email/<name>``).

    ``templates_dir`` holds templates that replace the built-in ones of the same file name. Notifiers
    posting to the same Slack webhook URL, or to the same channel in app mode, share one pacer, so together
    they stay at one message a second. ``failures`` is the app's template-failure counter
    (``ReceiverMetrics.template_failures``). A loaded config has passed ``notifier_problems`` already.
    """
    notifiers: dict[str, Notifier] = {}
    for _, _, key, build in _builders(config, templates_dir, failures):
        try:
            notifiers[key] = build()
        except ValueError as exc:
            raise NotifierSetupError(f"{key}: {exc}") from None
    return notifiers


def notifier_problems(config: NotifiersConfig, templates_dir: Path | None = None) -> list[str]:
    """A ``key.path: problem`` line for every notifier that cannot be built, so a config load reports them
    all: templates that cannot be read or do not compile, an unusable ``ca_file``.

    An entry with a secret problem is left out: the load reports that already, by its key.
    """
    problems: list[str] = []
    for loc, entry, _, build in _builders(config, templates_dir, None):
        if secret_problems(entry):
            continue
        try:
            build()
        except TemplateConfigError as exc:
            for key, message in exc.problems:
                problems.append(f"{key_path((*loc, *key.split('.')) if key else ('templates_dir',))}: {message}")
        except ValueError as exc:
            problems.append(f"{key_path(loc)}: {exc}")
    return list(dict.fromkeys(problems))  # a broken file in templates_dir fails every notifier using it
