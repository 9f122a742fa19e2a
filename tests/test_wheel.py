"""The installed form: build the wheel, install it into a fresh venv outside the checkout, run the programs.

The source copy the wheel is built from leaves out ``tests/``, and every program runs from an empty
working directory with no path into the checkout, so anything the programs need at run time (the Lua
script, templates, the thresholds file) must be package data of the wheel.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOT_SHIPPED = shutil.ignore_patterns(
    ".git", ".venv", "tests", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache"
)

pytestmark = pytest.mark.slow


def run(argv: list[str | Path], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the built wheel, the bin directory of a fresh venv with it installed)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    shutil.copytree(REPO, source, ignore=NOT_SHIPPED)
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", root / "dist", source], cwd=root)
    assert built.returncode == 0, built.stderr
    (wheel,) = (root / "dist").glob("opsloop-*.whl")
    venv = root / "venv"
    made = run([sys.executable, "-m", "venv", venv], cwd=root)
    assert made.returncode == 0, made.stderr
    done = run([venv / "bin" / "python", "-m", "pip", "install", "-q", wheel], cwd=root)
    assert done.returncode == 0, done.stderr
    return wheel, venv / "bin"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any way back into the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, **extra}


def test_the_only_top_level_import_name_is_opsloop(installed: tuple[Path, Path]) -> None:
    wheel, _ = installed
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (dist_info,) = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
        top_level = archive.read(f"{dist_info}/top_level.txt").decode().split()
    assert top_level == ["opsloop"]
    assert {n.split("/")[0] for n in names} == {"opsloop", dist_info}
    for data in (
        "opsloop/exporter/sources/redis_keys.lua",
        "opsloop/exporter/sources/frameworks/common.lua",
        "opsloop/receiver/actions/failed_jobs.lua",
        "opsloop/render/thresholds.yaml",
        "opsloop/render/templates/rules.yml.j2",
        "opsloop/receiver/templates/slack.md.j2",
        "opsloop/receiver/templates/email.html.j2",
    ):
        assert data in names


def test_the_venv_imports_the_installed_package(installed: tuple[Path, Path], tmp_path: Path) -> None:
    _, bin_dir = installed
    done = run([bin_dir / "python", "-c", "import opsloop; print(opsloop.__file__)"], cwd=tmp_path, env=clean_env())
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(bin_dir.parent)


def credentials(example: Path, directory: Path) -> dict[str, str]:
    """Every ``${CREDENTIALS_DIRECTORY}/name`` the example reads, written as systemd would; the environment."""
    directory.mkdir()
    for name in re.findall(r"^[^#\n]*\$\{CREDENTIALS_DIRECTORY\}/([\w.-]+)", example.read_text(), re.MULTILINE):
        value = (
            "https://hooks.slack.invalid/x"
            if "slack" in name
            else "postgresql://u@127.0.0.1/app"
            if "dsn" in name
            else "s3cret"
        )
        (directory / name).write_text(value + "\n")
    return clean_env(CREDENTIALS_DIRECTORY=str(directory))


def check_example(bin_dir: Path, tmp_path: Path, program: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """``opsloop-<program> --check-config`` on a copy of ``deploy/<program>.example.yml`` with its credentials."""
    config = tmp_path / f"{program}.yml"
    shutil.copy(REPO / "deploy" / f"{program}.example.yml", config)
    env = credentials(config, tmp_path / "credentials")
    return config, run([bin_dir / f"opsloop-{program}", "--config", config, "--check-config"], cwd=tmp_path, env=env)


def test_exporter_checks_the_shipped_example(installed: tuple[Path, Path], tmp_path: Path) -> None:
    config, done = check_example(installed[1], tmp_path, "exporter")
    assert (done.returncode, done.stdout.strip()) == (0, f"{config}: configuration is valid"), done.stderr


def test_receiver_checks_the_shipped_example(installed: tuple[Path, Path], tmp_path: Path) -> None:
    bin_dir = installed[1]
    config, done = check_example(bin_dir, tmp_path, "receiver")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{config}: configuration is valid (")
    # And the same file without its credentials is refused, naming every key that needs one.
    done = run([bin_dir / "opsloop-receiver", "--config", config, "--check-config"], cwd=tmp_path, env=clean_env())
    assert done.returncode == 1
    unset = "CREDENTIALS_DIRECTORY is not set (systemd sets it with LoadCredential=)"
    assert (
        f"{config}: auth.bearer_token_file: ${{CREDENTIALS_DIRECTORY}}/opsloop-token: {unset}"
        in done.stderr.splitlines()
    )


def test_render_reproduces_the_committed_files(installed: tuple[Path, Path], tmp_path: Path) -> None:
    _, bin_dir = installed
    committed = tmp_path / "committed"
    for folder in ("rules", "dashboards"):
        shutil.copytree(REPO / folder, committed / folder)
    render = bin_dir / "opsloop-render"
    done = run([render, "--check", "--out", committed], cwd=tmp_path, env=clean_env())
    assert done.returncode == 0, done.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run([render, "--check", "--out", empty], cwd=tmp_path, env=clean_env()).returncode == 1
    assert run([render, "--out", empty], cwd=tmp_path, env=clean_env()).returncode == 0
    assert run([render, "--check", "--out", empty], cwd=tmp_path, env=clean_env()).returncode == 0
