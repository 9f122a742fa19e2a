"""Building the package is quiet (no setuptools deprecation wall) and the wheel holds its run-time files."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_builds_without_warnings_and_holds_templates_and_license(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    backend = [line for line in (done.stdout + done.stderr).splitlines() if "Warning" in line and "setuptools" in line]
    assert backend == []
    (wheel,) = tmp_path.glob("opsloop-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "opsloop/receiver/templates/email.html.j2" in names
    assert "opsloop/receiver/templates/console/incidents.html.j2" in names
    assert {"opsloop/receiver/static/console.css", "opsloop/receiver/static/refresh.js"} <= names
    assert "opsloop/render/templates/rules.yml.j2" in names
    assert "opsloop/render/thresholds.yaml" in names
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
