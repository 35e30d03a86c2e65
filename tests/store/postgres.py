"""The PostgreSQL the store's tests run on: the server scripts/postgres-for-tests starts (its URL
and password in the environment), a new database for each test, dropped after it."""

from __future__ import annotations

import atexit
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url

from bot.store import open_store
from bot.store.location import locate

URL_VARIABLE = "CERTOPS_TEST_POSTGRES_URL"  # postgresql://certops@127.0.0.1:PORT/certops, no password
PASSWORD_VARIABLE = "CERTOPS_TEST_POSTGRES_PASSWORD"
# what scripts/test says when it could not start PostgreSQL, shown as the tests' skip reason
WHY_NOT_VARIABLE = "CERTOPS_TEST_POSTGRES_SKIP_REASON"

_admin: dict[str, Engine] = {}
_templates: dict[str, str] = {}


def server_url() -> str:
    """The server's URL, or the test is skipped saying why there is none."""
    url = os.environ.get(URL_VARIABLE)
    if not url:
        why = os.environ.get(WHY_NOT_VARIABLE) or "scripts/test starts one with scripts/postgres-for-tests"
        pytest.skip(f"no PostgreSQL to test on ({URL_VARIABLE} is not set): {why}")
    return url


def password() -> str | None:
    return os.environ.get(PASSWORD_VARIABLE) or None


def _admin_engine(url: str) -> Engine:
    engine = _admin.get(url)
    if engine is None:
        engine = create_engine(locate(url, password=password()).url, isolation_level="AUTOCOMMIT", pool_size=1)
        _admin[url] = engine
    return engine


def _template(url: str) -> str:
    """A database migrated to the newest schema once per run, copied for each contract test
    (cheaper than running the migrations again each time; test_postgresql.py runs them)."""
    name = _templates.get(url)
    if name is None:
        name = f"certops_template_{uuid.uuid4().hex[:12]}"
        with _admin_engine(url).connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        open_store(make_url(url).set(database=name).render_as_string(hide_password=False), password=password()).close()
        _templates[url] = name
        atexit.register(_drop, url, name)
    return name


def _drop(url: str, name: str) -> None:
    with _admin_engine(url).connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_database(*, migrated: bool = False) -> Iterator[str]:
    """The URL (without its password) of a new database on the test server: empty, or
    `migrated` to the newest schema (and nothing else in it)."""
    url = server_url()
    name = f"certops_test_{uuid.uuid4().hex[:12]}"
    engine = _admin_engine(url)
    template = f' TEMPLATE "{_template(url)}"' if migrated else ""
    with engine.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"{template}')
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        _drop(url, name)
