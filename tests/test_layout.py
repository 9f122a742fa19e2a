"""The package layout the README's Architecture section promises: import directions and module sizes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PARTS = {
    "opsloop": "opsloop",
    "exporter": "opsloop.exporter",
    "receiver": "opsloop.receiver",
    "render": "opsloop.render",
}
NOT_AT_RUN_TIME = ("opsloop.demo", "opsloop.testsupport")
MAX_LINES = 400
REASON = "longer than 400 lines because"


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; the project uses no relative imports)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def modules(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("folder", list(PARTS))
def test_parts_import_only_the_shared_package_and_themselves(folder: str) -> None:
    others = [p for f, p in PARTS.items() if f not in (folder, "opsloop")]
    if folder == "opsloop":
        others = [p for f, p in PARTS.items() if f != "opsloop"]
    wrong = {
        f"{path.relative_to(REPO)}: {name}"
        for path in modules(folder)
        for name in imports(path)
        if any(under(name, package) for package in (*others, *NOT_AT_RUN_TIME))
    }
    assert wrong == set()


def test_the_receiver_core_is_reached_through_public_names() -> None:
    """``domain`` imports nothing of the receiver; code outside ``store/`` uses only the store package."""
    assert {n for n in imports(REPO / "receiver" / "domain.py") if under(n, "opsloop.receiver")} == set()
    store = "opsloop.receiver.store"
    wrong = {
        f"{path.relative_to(REPO)}: {name}"
        for path in modules("receiver")
        if "store" not in path.relative_to(REPO / "receiver").parts
        for name in imports(path)
        if under(name, store) and name != store and name.removeprefix(store + ".") not in _store_exports()
    }
    assert wrong == set()


def _store_exports() -> list[str]:
    tree = ast.parse((REPO / "receiver" / "store" / "__init__.py").read_text())
    (exported,) = [n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "__all__"]
    return [ast.literal_eval(e) for e in exported.elts]


@pytest.mark.parametrize("folder", ["exporter", "receiver", "render"])
def test_modules_stay_small_or_say_why(folder: str) -> None:
    long = [
        f"{path.relative_to(REPO)} ({len(path.read_text().splitlines())} lines)"
        for path in modules(folder)
        if len(path.read_text().splitlines()) > MAX_LINES
        and REASON not in (ast.get_docstring(ast.parse(path.read_text())) or "")
    ]
    assert long == []
