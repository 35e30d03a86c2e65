"""The store contract suite: every test taking `store` runs against each backend in BACKENDS.

Each backend is a context manager that opens a fresh, empty store of that kind (and removes it
after). PostgreSQL's is the server scripts/postgres-for-tests starts; without one (its URL not in
CERTOPS_TEST_POSTGRES_URL) those tests are skipped, saying why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from bot.store import SqlStore, open_store
from tests.store import postgres


@contextmanager
def _opened(database: str, password: str | None = None) -> Iterator[SqlStore]:
    store = open_store(database, password=password)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def _postgresql(_tmp_path: Path) -> Iterator[SqlStore]:
    with postgres.fresh_database(migrated=True) as url, _opened(url, postgres.password()) as store:
        yield store


BACKENDS: dict[str, Callable[[Path], AbstractContextManager[SqlStore]]] = {
    "sqlite-file": lambda tmp_path: _opened(str(tmp_path / "certops.db")),
    "sqlite-memory": lambda _tmp_path: _opened(":memory:"),
    "postgresql": _postgresql,
}


@pytest.fixture(params=list(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    with BACKENDS[request.param](tmp_path) as opened:
        yield opened
