"""The store contract suite: every test taking `store` runs against each backend in BACKENDS.

A new backend (PostgreSQL, with the HA work) is one more entry: a function that opens a fresh,
empty store of that kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.store import SqlStore, open_store

BACKENDS: dict[str, Callable[[Path], SqlStore]] = {
    "sqlite-file": lambda tmp_path: open_store(str(tmp_path / "certops.db")),
    "sqlite-memory": lambda _tmp_path: open_store(":memory:"),
}


@pytest.fixture(params=list(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    opened = BACKENDS[request.param](tmp_path)
    yield opened
    opened.close()
