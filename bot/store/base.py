"""The engine, the transactions every port method runs in, and the store's lifetime."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from bot.store import dialect
from bot.store.errors import StoreDamaged, StoreError, StoreWriteFailed, reason, translated
from bot.store.location import claim_ownership, locate
from bot.store.migrate import upgrade


class Database:
    """Opens (and migrates) the database named by `database`; every call after that is
    synchronous and thread-safe, each in a transaction of its own."""

    def __init__(self, database: str | os.PathLike[str], *, guest: bool = False, password: str | None = None) -> None:
        """`guest`: another process owns the file (certops run) and has migrated it; this one
        takes no lock and only appends (the CLI writing the audit log). `password`: for a
        postgresql:// URL (never written inside it)."""
        location = locate(database, password=password)
        self._closed = False
        # the replica this store runs requests for (bot.leader.replica_id); None: the only process
        self.runner: str | None = None
        self._write_problem: str | None = None
        self.name = location.name
        self.url = location.url
        owner = None if guest else claim_ownership(location)
        # released on close(), or when a store nobody closed is collected
        self._release = weakref.finalize(self, os.close, owner) if owner is not None else None
        self._engine = dialect.make_engine(location.url)
        self._writer = self._engine.execution_options(**{dialect.WRITE: True})
        self._serial: AbstractContextManager[object] = (
            threading.RLock() if dialect.shares_one_connection(self._engine) else nullcontext()
        )
        if guest:
            return
        try:
            with self._write() as connection:
                upgrade(connection, self.name)
        except (StoreWriteFailed, StoreDamaged) as error:
            self.close()
            detail = error.reason
            if location.file is None and error.__cause__ is not None and not dialect.is_memory(location.url):
                detail = reason(error.__cause__)  # the server's own words: refused, wrong password, no such database
            raise StoreError(f"cannot open {self.name}: {detail}") from error
        except DBAPIError as error:
            self.close()
            raise StoreError(f"cannot open {self.name}: {reason(error)}") from None
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        # closed for good: its lock is released, so another certops may own the file from now on
        self._closed = True
        self._engine.dispose()
        if self._release is not None:
            self._release()

    def write_problem(self) -> str | None:
        """Why the last write failed, as /healthz says it ("the database cannot be written (the
        disk is full)"); None once a write has succeeded again."""
        problem = self._write_problem
        return f"the database cannot be written ({problem})" if problem else None

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self.name} was closed; certops is stopping")

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """One consistent snapshot for the queries of one call."""
        self._check_open()
        try:
            with self._serial, self._engine.connect() as connection, connection.begin():
                yield connection
        except DBAPIError as error:
            failure = translated(self.name, error)
            if failure is None:
                raise
            raise failure from error

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A transaction that holds the write lock from its first statement (see dialect.WRITE):
        a compare-and-set reads and writes without anyone writing in between."""
        self._check_open()
        try:
            with self._serial, self._writer.connect() as connection, connection.begin():
                yield connection
        except DBAPIError as error:
            failure = translated(self.name, error)
            if failure is None:
                raise
            if isinstance(failure, StoreWriteFailed):
                self._write_problem = failure.reason  # until a write succeeds again
            raise failure from error
        self._write_problem = None
