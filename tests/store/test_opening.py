"""Opening a store: what `database` may say, one certops process per file, and what it is told."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.core.ports import StorePort
from bot.store import SqlStore, Store, StoreBusy, StoreError, open_store, resolved_database_path
from bot.store.location import database_problem, locate
from tests.store.helpers import open_one


def test_a_second_process_cannot_take_over_a_database_in_use(tmp_path: Path) -> None:
    first = Store(tmp_path / "certops.db")
    request = first.create_request(
        incident_id=None,
        site=None,
        host="iis01",
        action="repair-store",
        args=("A" * 40,),
        target="A" * 40,
        requested_by="x",
        ttl=60,
    )
    assert first.start_request(request.token) == "started"
    with pytest.raises(StoreBusy, match="another certops process is using"):
        Store(tmp_path / "certops.db")
    assert first.request(request.token).state == "running"  # type: ignore[union-attr]
    first.close()
    second = Store(tmp_path / "certops.db")  # the lock went with the first owner
    assert [r.token for r in second.fail_interrupted()] == [request.token]
    second.close()


def test_the_lock_is_the_file_next_to_the_database_whichever_way_it_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("certops.db")
    try:
        assert (tmp_path / "certops.db").exists()
        assert (tmp_path / "certops.db.lock").exists()
        with pytest.raises(StoreBusy):
            open_store(f"sqlite:///{tmp_path / 'certops.db'}")
        with pytest.raises(StoreBusy):
            open_store("sqlite:///certops.db")
    finally:
        store.close()


def test_closing_twice_is_harmless_and_frees_the_lock(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "certops.db"))
    store.close()
    store.close()
    open_store(str(tmp_path / "certops.db")).close()


def test_a_plain_file_name_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("certops.db")
    try:
        open_one(store)
        monkeypatch.chdir("/")  # where the process goes later does not move the database
        assert store.open_incidents()
    finally:
        store.close()
    assert (tmp_path / "certops.db").exists()


def test_a_sqlite_url_opens_that_file(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        open_one(store)
    finally:
        store.close()
    reopened = open_store(str(tmp_path / "state.db"))
    try:
        assert len(reopened.open_incidents()) == 1
    finally:
        reopened.close()


def test_each_in_memory_store_is_its_own_database(tmp_path: Path) -> None:
    first, second = open_store(":memory:"), open_store("sqlite://")
    try:
        open_one(first)
        assert second.open_incidents() == []
    finally:
        first.close()
        second.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://certops:hunter2@db.example/certops",
        "postgresql://certops@db.example/certops?password=hunter2",
        "postgresql://certops@db.example/certops?sslmode=require&PassFile=/tmp/hunter2",
    ],
)
def test_a_postgresql_url_with_a_password_in_it_is_refused_without_showing_it(url: str) -> None:
    with pytest.raises(StoreError, match="has a password in it: secrets never go in the config file") as refused:
        open_store(url)
    assert "hunter2" not in str(refused.value)
    assert "database_password_env or database_password_file" in str(refused.value)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql+psycopg2://certops@db.example/certops", "through psycopg 3"),
        ("postgresql+asyncpg://certops@db.example/certops", "through psycopg 3"),
        ("postgresql://certops@db.example/", "names no database"),
        ("postgresql://certops@db.example/certops?sslmode=sometimes", "sslmode must be one of disable, allow"),
        ("postgresql://certops@db.example:port/certops", "is not a database URL"),
    ],
)
def test_a_postgresql_url_certops_cannot_use_is_refused_with_a_sentence(url: str, problem: str) -> None:
    with pytest.raises(StoreError, match=problem):
        open_store(url, password="hunter2")


def test_a_postgresql_url_is_named_without_the_password_it_is_given() -> None:
    location = locate("postgresql://certops@db.example:5433/certops?sslmode=verify-full", password="hunter2")
    assert location.name == "postgresql://certops@db.example:5433/certops?sslmode=verify-full"
    assert location.file is None  # no lock file: PostgreSQL's writers take turns in the server
    assert location.url.password == "hunter2"
    assert location.url.drivername == "postgresql+psycopg"
    assert "hunter2" not in repr(location.url)
    assert database_problem("postgresql://certops@db.example/certops") is None
    assert database_problem("postgresql://certops:hunter2@db.example/certops") == (
        "postgresql://certops:***@db.example/certops has a password in it: secrets never go in the config file; "
        "write the URL without it and set database_password_env or database_password_file in [bot]"
    )
    assert database_problem("certops.db") is None


def test_another_kind_of_database_or_a_garbled_url_is_refused_with_a_sentence() -> None:
    with pytest.raises(StoreError, match="not mysql"):
        open_store("mysql://db.example/certops")
    with pytest.raises(StoreError, match="is not a database URL") as garbled:
        open_store("my db://user:hunter2@x/y")
    assert "hunter2" not in str(garbled.value)
    with pytest.raises(StoreError, match="driver certops does not have") as driver:
        open_store("sqlite+nodriver://user:hunter2@x/y")
    assert "hunter2" not in str(driver.value)


def test_a_database_that_cannot_be_opened_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "certops.db").write_bytes(b"this is not a database, just bytes " * 100)
    with pytest.raises(StoreError, match="cannot open"):
        open_store(str(tmp_path / "certops.db"))
    open_store(str(tmp_path / "other.db")).close()


def test_the_database_is_named_by_its_absolute_path_or_its_url_without_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolved_database_path("certops.db") == str(tmp_path / "certops.db")
    assert resolved_database_path(tmp_path / "x" / ".." / "certops.db") == str(tmp_path / "certops.db")
    assert resolved_database_path("sqlite:///certops.db") == str(tmp_path / "certops.db")
    assert resolved_database_path(":memory:") == ":memory:"
    assert resolved_database_path("postgresql://certops:secret@db.example:5432/certops") == (
        "postgresql://certops:***@db.example:5432/certops"
    )
    assert "secret" not in resolved_database_path("my db://u:secret@x/y")


def test_the_store_is_every_port_at_once_and_store_is_its_old_name(tmp_path: Path) -> None:
    store: StorePort = open_store(os.fspath(tmp_path / "certops.db"))
    assert isinstance(store, SqlStore)
    assert Store is SqlStore
    store.close()
