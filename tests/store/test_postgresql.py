"""What only PostgreSQL has to show: the migrations build bot/store/schema.py there too, the
password comes from outside the URL and sslmode reaches libpq, and there is no one-process lock
(writers take turns in the server instead)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from bot.core.model import IncidentState, Step
from bot.store import StoreError, open_store
from bot.store.location import locate
from bot.store.migrate import head_revision
from bot.store.schema import metadata
from tests.store import postgres
from tests.store.helpers import T0, open_one, race


@pytest.fixture
def database() -> Iterator[str]:
    with postgres.fresh_database() as url:
        yield url


def test_the_migrations_build_exactly_the_newest_schema_on_postgresql(database: str) -> None:
    open_store(database, password=postgres.password()).close()
    engine = create_engine(locate(database, password=postgres.password()).url)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").all() == [(head_revision(),)]
            assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    finally:
        engine.dispose()


def test_two_processes_may_open_one_postgresql_database_and_their_writes_take_turns(database: str) -> None:
    first = open_store(database, password=postgres.password())
    second = open_store(database, password=postgres.password())  # no lock: replicas share the database
    try:
        incident = open_one(first, "www", at=T0)
        stores = [first, second] * 4
        moved = race(
            8,
            lambda i: stores[i].transition(
                incident.id,
                expected=[IncidentState.OPEN],
                new=IncidentState.ACKED,
                step=Step.ACKED,
                reason="on it",
                actor=f"slack:U{i}",
                at=T0,
            ),
        )
        assert sum(result is not None for result in moved) == 1
        assert second.incident(incident.id).state is IncidentState.ACKED  # type: ignore[union-attr]
    finally:
        first.close()
        second.close()


def test_the_password_is_required_and_never_shown(database: str) -> None:
    if postgres.password() is None:
        pytest.skip("the test server takes no password")
    with pytest.raises(StoreError, match="password authentication failed") as refused:
        open_store(database, password="hunter2-not-it")
    assert "hunter2" not in str(refused.value)
    assert str(refused.value).startswith(f"cannot open {database}: ")


def test_sslmode_in_the_url_is_what_libpq_does(database: str) -> None:
    # the test server has no TLS: "require" must refuse it, "disable" must not try
    with pytest.raises(StoreError, match="server does not support SSL, but SSL was required"):
        open_store(f"{database}?sslmode=require", password=postgres.password())
    open_store(f"{database}?sslmode=disable", password=postgres.password()).close()
