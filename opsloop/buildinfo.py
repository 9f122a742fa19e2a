"""What ``--version`` prints and ``opsloop_build_info`` exports: version, revision, build date, Python.

The revision is the commit pip recorded when installing from a git URL (PEP 610 ``direct_url.json``),
or the checkout's HEAD for an editable install; ``unknown`` otherwise. The build date is when the
package's files were written, which pip does at install time (for an image: when it was built).
"""

from __future__ import annotations

import json
import platform
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from importlib import metadata
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from opsloop import __version__
from opsloop.metric_contract import OPSLOOP_BUILD_INFO


@cache
def revision() -> str:
    try:
        direct = metadata.distribution("opsloop").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        direct = None
    commit = (json.loads(direct).get("vcs_info") or {}).get("commit_id") if direct else None
    if commit:
        return str(commit)
    checkout = Path(__file__).resolve().parents[1]
    if not (checkout / "pyproject.toml").is_file():  # installed from a wheel: no checkout to ask
        return "unknown"
    try:
        out = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


@cache
def build_date() -> str:
    """When this package's files were written: pip writes them at install (in an image, at build)."""
    try:
        stamp = Path(__file__).stat().st_mtime
    except OSError:
        return "unknown"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y%m%d-%H:%M:%S")


def version_text(prog: str) -> str:
    """Prometheus' ``--version`` layout."""
    return (
        f"{prog}, version {__version__} (revision: {revision()})\n"
        f"  build date:       {build_date()}\n"
        f"  python version:   {platform.python_version()}\n"
        f"  platform:         {platform.system().lower()}/{platform.machine()}"
    )


class BuildInfoCollector(Collector):
    """``opsloop_build_info{version, revision, pythonversion} 1``."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            OPSLOOP_BUILD_INFO.name, OPSLOOP_BUILD_INFO.help, labels=list(OPSLOOP_BUILD_INFO.labels)
        )
        family.add_metric([__version__, revision(), platform.python_version()], 1)
        yield family
