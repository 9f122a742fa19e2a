from pathlib import Path

import pytest
from opsloop.render.thresholds import Tiered, load_thresholds, merge

from opsloop.configfile import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_packaged_defaults_are_the_repository_file() -> None:
    assert (REPO / "render" / "thresholds.yaml").resolve() == (REPO / "rules" / "thresholds.yaml").resolve()


def test_defaults_load_with_issue_values() -> None:
    t = load_thresholds()
    assert t.selector == 'job="opsloop"'
    assert (t.queues.backlog.warning.threshold, t.queues.backlog.warning.for_) == (50, 300)
    assert (t.dlq.increasing.threshold, t.dlq.increasing.window, t.dlq.increasing.for_) == (5, 600, 120)
    assert t.dlq.increasing.severity == "critical"
    assert (t.cache.hit_ratio_low.threshold, t.cache.hit_ratio_low.for_) == (0.5, 600)
    assert (t.cache.memory.warning.threshold, t.cache.memory.critical.threshold) == (0.8, 0.9)
    assert (t.cache.slow.threshold, t.sources.down.for_, t.sources.down.severity) == (1, 60, "critical")
    assert t.business.job_failures.max_ratio == 0.03
    assert t.business.job_failures.windows == [300, 1800, 3600, 21600]
    assert t.business.job_duration.threshold == 60


def test_merge_is_deep_and_leaves_inputs_alone() -> None:
    base = {"a": {"b": 1, "c": 2}, "d": 3}
    assert merge(base, {"a": {"b": 9}}) == {"a": {"b": 9, "c": 2}, "d": 3}
    assert base == {"a": {"b": 1, "c": 2}, "d": 3}


def test_partial_override_changes_only_what_it_lists(tmp_path: Path) -> None:
    override = tmp_path / "mine.yaml"
    override.write_text("selector: 'job=\"shop\"'\nqueues:\n  backlog:\n    warning: {threshold: 20}\n")
    t = load_thresholds(override)
    defaults = load_thresholds()
    assert t.selector == 'job="shop"'
    assert t.queues.backlog.warning.threshold == 20
    assert t.queues.backlog.warning.for_ == defaults.queues.backlog.warning.for_
    assert t.queues.backlog.critical == defaults.queues.backlog.critical
    assert t.cache == defaults.cache


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "queues:\n  backlog:\n    warning: {threshold: 600}\n",
            "queues.backlog: warning threshold 600 must be below critical threshold 500",
        ),
        (
            "cache:\n  slow:\n    severity: page\n",
            "cache.slow.severity: expected one of critical, warning, info, got 'page'",
        ),
        ("dlq:\n  increasing:\n    window: soon\n", "dlq.increasing.window: expected a duration such as 30s, 5m or 1h"),
        ("queues:\n  backlogg: {}\n", "queues.backlogg: unknown key"),
        (
            "business:\n  job_failures:\n    critical: {long_window: 12h}\n",
            "business.job_failures: critical.long_window must be shorter than warning.long_window",
        ),
    ],
)
def test_bad_override_names_the_key(tmp_path: Path, text: str, problem: str) -> None:
    override = tmp_path / "bad.yaml"
    override.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_thresholds(override)
    assert caught.value.path == str(override)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_override_must_be_a_mapping(tmp_path: Path) -> None:
    override = tmp_path / "list.yaml"
    override.write_text("- 1\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_thresholds(override)


def _tiered(node: object, path: str = "") -> list[tuple[str, Tiered]]:
    """Every warning/critical pair anywhere in the thresholds, with its key path."""
    if isinstance(node, Tiered):
        return [(path, node)]
    fields = getattr(type(node), "model_fields", {})
    return [pair for name in fields for pair in _tiered(getattr(node, name), f"{path}.{name}".lstrip("."))]


def test_every_warning_threshold_is_below_its_critical_twin() -> None:
    t = load_thresholds()
    pairs = _tiered(t)
    assert {path for path, _ in pairs} == {"queues.backlog", "queues.oldest_age", "cache.memory"}
    for path, pair in pairs:
        assert pair.warning.threshold < pair.critical.threshold, path
    jobs = t.business.job_failures
    assert jobs.critical.long_window < jobs.warning.long_window
    assert jobs.critical.for_ < jobs.warning.for_
