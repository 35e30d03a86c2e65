"""Where the database is: what the `database` setting may say (a SQLite file, or a PostgreSQL
URL whose password comes from elsewhere), and the lock that keeps one certops process per SQLite
file (PostgreSQL has none: its writers take turns inside the database, see dialect.py)."""

from __future__ import annotations

import fcntl
import os
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from bot.store.errors import StoreBusy, StoreError

MEMORY = ":memory:"


@dataclass(frozen=True)
class Location:
    url: URL  # for the engine: a file's path made absolute
    name: str  # as the operator wrote it, for messages
    file: Path | None  # the SQLite file; None in memory


def locate(database: str | os.PathLike[str], *, password: str | None = None) -> Location:
    """A plain file name or path (relative to the working directory, as before), ":memory:", or
    a SQLAlchemy URL: sqlite:///PATH, or postgresql://USER@HOST[:PORT]/DATABASE[?sslmode=...]
    with `password` (from [bot] database_password_env or _file), never one inside the URL."""
    text = os.fspath(database)
    if text == MEMORY:
        return Location(URL.create("sqlite"), MEMORY, None)
    if "://" not in text:
        path = Path(os.path.abspath(text))
        return Location(URL.create("sqlite", database=str(path)), text, path)
    url = _parse(text)
    backend = url.get_backend_name()
    if backend == "postgresql":
        return _postgresql(text, url, password)
    if backend != "sqlite":
        raise StoreError(
            f"certops keeps its state in SQLite or PostgreSQL, not {backend}: set database to a file name "
            "or a postgresql:// URL"
        )
    try:
        url.get_dialect()
    except NoSuchModuleError:
        raise StoreError(f"{_mask(text)} names a SQLite driver certops does not have: use sqlite:///PATH") from None
    if url.database in (None, "", MEMORY):
        return Location(url.set(database=None), MEMORY, None)
    path = Path(os.path.abspath(url.database))
    return Location(url.set(database=str(path)), url.database, path)


def database_problem(database: str) -> str | None:
    """What is wrong with a `database` setting, as the sentence check-config shows after
    "database ", or None. Only what can be told without connecting (the URL's shape)."""
    try:
        locate(database, password=None)
    except StoreError as error:
        return str(error)
    return None


def _postgresql(text: str, url: URL, password: str | None) -> Location:
    shown = _mask(text)
    if url.password is not None or {"password", "passfile"} & {key.lower() for key in url.query}:
        shown = re.sub(r"([?&](?:password|passfile)=)[^&]*", r"\1***", shown, flags=re.IGNORECASE)
        raise StoreError(
            f"{shown} has a password in it: secrets never go in the config file; write the URL without it "
            "and set database_password_env or database_password_file in [bot]"
        )
    if url.drivername not in ("postgresql", "postgresql+psycopg"):
        raise StoreError(
            f"{shown}: certops talks to PostgreSQL through psycopg 3; write postgresql://USER@HOST/DATABASE"
        )
    if not url.database:
        raise StoreError(f"{shown} names no database: write postgresql://USER@HOST/DATABASE")
    sslmode = url.query.get("sslmode")
    if sslmode is not None and sslmode not in SSLMODES:
        raise StoreError(f"{shown}: sslmode must be one of {', '.join(SSLMODES)}, got {sslmode!r}")
    name = url.render_as_string(hide_password=True)
    engine_url = url.set(drivername="postgresql+psycopg", password=password or None)
    return Location(engine_url, name, None)


# libpq's sslmode values, weakest first
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def resolved_database_path(database: str | os.PathLike[str]) -> str:
    """What to tell the operator: a file database's absolute path, ":memory:", or the URL with
    any password masked."""
    text = os.fspath(database)
    if text == MEMORY:
        return MEMORY
    if "://" not in text:
        return os.path.abspath(text)
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        return _mask(text)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", MEMORY):
        return os.path.abspath(url.database)
    return url.render_as_string(hide_password=True)


def claim_ownership(location: Location) -> int | None:
    """An exclusive lock next to the database file for as long as this process uses it (a file
    descriptor: the lock goes with it when the store is closed or the process ends). A database
    in memory is this process's own."""
    if location.file is None:
        return None
    fd = os.open(f"{location.file}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreBusy(f"another certops process is using {location.name}; stop it first") from None
    return fd


def _parse(text: str) -> URL:
    try:
        return make_url(text)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise StoreError(f"{_mask(text)} is not a database URL (nor a file name)") from None


def _mask(text: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", text)
