"""The store package's public face: the names it exports and the store a URL opens (not yet opened)."""

from __future__ import annotations

import re
from pathlib import Path

import opsloop.receiver.store as store_package
import pytest
from opsloop.receiver.store import PostgresStore, SqliteStore, open_store


def test_every_exported_name_is_there() -> None:
    namespace: dict[str, object] = {}
    exec("from opsloop.receiver.store import *", namespace)  # what a star import gives
    assert sorted(set(namespace) - {"__builtins__"}) == sorted(store_package.__all__)
    assert {"Store", "StoreUnavailable", "open_store", "Stmt", "IncidentFilter"} <= set(namespace)


def test_a_sqlite_url_opens_the_file_it_names(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path / 'a.db'}")
    assert isinstance(store, SqliteStore)
    assert store.path == tmp_path / "a.db"
    relative = open_store("sqlite:///receiver.db")  # three slashes and an absolute path
    assert isinstance(relative, SqliteStore)
    assert relative.path == Path("/receiver.db")


@pytest.mark.parametrize("url", ["postgresql://u@db:5432/receiver", "postgres://u@db/receiver"])
def test_a_postgresql_url_is_handed_to_the_driver_as_it_is(url: str) -> None:
    store = open_store(url)
    assert isinstance(store, PostgresStore)
    assert store.dsn == url


@pytest.mark.parametrize("url", ["sqlite://receiver.db", "mysql://localhost/x", "postgresql:/x"])
def test_any_other_url_is_refused_naming_its_scheme(url: str) -> None:
    scheme = url.split(":", 1)[0]
    expected = f"unsupported store URL {scheme}:// (use sqlite:/// or postgresql://)"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        open_store(url)
