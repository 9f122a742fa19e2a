"""The exporter's configuration, validated in a short-lived child process (``opsloop.snapshot``).

The serving process never imports pydantic, PyYAML or the config models: the child runs the same
``load_config`` that ``--check-config`` runs and answers with every problem and key path exactly as
that load reports them, or with the configuration as read-only records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from opsloop.snapshot import answer, validate_in_child

if TYPE_CHECKING:
    from opsloop.exporter.config import ExporterConfig


def load_validated(path: str) -> tuple[ExporterConfig | None, list[str]]:
    """The configuration as records, or (None, every problem) when it cannot be used."""
    config, problems = validate_in_child(__name__, path)
    return cast("ExporterConfig | None", config), problems


def _problems(exc: Exception) -> list[str] | None:
    from opsloop.configfile import ConfigError

    return exc.problems if isinstance(exc, ConfigError) else None


if __name__ == "__main__":
    from opsloop.exporter.config import load_config

    answer(load_config, _problems)
