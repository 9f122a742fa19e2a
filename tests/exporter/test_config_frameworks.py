"""The ``frameworks:`` section: the issue's example verbatim, and clear errors for entries that cannot work."""

from __future__ import annotations

from pathlib import Path

import pytest
from opsloop.exporter.config import load_config

from opsloop.configfile import ConfigError

EXAMPLE = """
redis: [{name: main, url: "redis://127.0.0.1:6379/0"}]
frameworks:
  - {redis: main, kind: rq}                        # every queue listed in rq:queues
  - {redis: main, kind: rq, queues: [default, high], prefix: "rq:"}
  - {redis: main, kind: dramatiq, namespace: dramatiq}   # queues found from its keys
  - {redis: main, kind: celery, queues: [celery, emails]}
  - {redis: main, kind: arq, queues: ["arq:queue"]}
"""


def test_issue_example_verbatim_is_valid(tmp_path: Path):
    path = tmp_path / "c.yml"
    path.write_text(EXAMPLE)
    config = load_config(path)
    assert [f.kind for f in config.frameworks] == ["rq", "rq", "dramatiq", "celery", "arq"]
    assert config.frameworks[3].priority_steps == [0, 3, 6, 9]
    assert config.frameworks[3].visibility_timeout == 3600.0


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("{redis: main, kind: celery}", "frameworks[0]: celery keeps no queue registry in Redis"),
        ("{redis: main, kind: arq}", "frameworks[0]: arq keeps no queue registry in Redis"),
        ("{redis: main, kind: rq, namespace: x}", "frameworks[0]: namespace applies to kind: dramatiq"),
        ("{redis: main, kind: arq, queues: [q], prefix: x}", "frameworks[0]: prefix applies to kind"),
        (
            "{redis: main, kind: sidekiq}",
            "frameworks[0].kind: expected one of rq, dramatiq, celery, arq, got 'sidekiq'",
        ),
        (
            "{redis: main, kind: rq, visibility_timeout: 1m}",
            "frameworks[0]: visibility_timeout applies to kind: celery",
        ),
        ("{redis: other, kind: rq}", "frameworks[0].redis: no redis entry is named 'other'"),
    ],
)
def test_bad_entries(tmp_path: Path, entry: str, expected: str):
    path = tmp_path / "c.yml"
    path.write_text(f"redis: [{{name: main, url: 'redis://x'}}]\nframeworks: [{entry}]\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert any(p.startswith(expected) for p in err.value.problems), err.value.problems
