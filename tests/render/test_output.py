"""The committed rule files and dashboards must be exactly what the renderer makes of the defaults."""

from pathlib import Path

from opsloop.render.output import render_all, write_all
from opsloop.render.thresholds import load_thresholds

REPO = Path(__file__).resolve().parents[2]


def test_committed_files_equal_a_fresh_render() -> None:
    files = render_all(load_thresholds())
    assert sorted(files) == [
        "dashboards/opsloop-overview.json",
        "dashboards/opsloop-queues.json",
        "rules/opsloop-alerts.yml",
        "rules/opsloop-records.yml",
    ]
    stale = [rel for rel, text in files.items() if (REPO / rel).read_text() != text]
    assert stale == [], "run opsloop-render to refresh the committed files"


def test_write_all_creates_the_layout(tmp_path: Path) -> None:
    files = {"rules/a.yml": "a\n", "dashboards/b.json": "{}\n"}
    written = write_all(files, tmp_path)
    assert written == [tmp_path / "rules/a.yml", tmp_path / "dashboards/b.json"]
    assert (tmp_path / "rules/a.yml").read_text() == "a\n"
