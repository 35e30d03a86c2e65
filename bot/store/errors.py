"""What the store raises when it cannot be opened or written as asked."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError, OperationalError

from bot.core.ports import StoreRefused


class StoreError(Exception):
    """The database cannot be used as configured: an unsupported URL, a newer schema. The message
    is a sentence for the operator, shown as is, never a traceback."""


class StoreBusy(StoreError):
    """Another certops process uses this database; two would each think they own the runs."""


class StoreWriteFailed(StoreError, StoreRefused):
    """The database refused a write for a reason outside certops (a read-only file, a failing
    disk): nothing of that transaction was kept. `reason` is a short phrase, "the disk is full".
    Other StoreErrors (a closed store) are certops's own faults, answered with an error reference."""

    def __init__(self, name: str, reason: str) -> None:
        StoreRefused.__init__(self, f"certops cannot save to {name}: {reason}", reason)


class StoreFull(StoreWriteFailed):
    """The disk (or the database's own size limit) is full."""


class StoreDamaged(StoreError, StoreRefused):
    """The file is not a database SQLite can read: damaged, or something else under that name."""

    def __init__(self, name: str, reason: str) -> None:
        StoreRefused.__init__(self, f"certops cannot use {name}: {reason}", "the database file is damaged")


# SQLite's primary result codes (the low byte of an extended code)
_READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 8, 10, 11, 13, 14, 26


def translated(name: str, error: DBAPIError) -> StoreError | None:
    """The StoreError a database failure means, or None when it is a fault of certops's own
    (which stays a traceback under an error reference)."""
    sqlstate = getattr(error.orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return _postgresql(name, sqlstate)
    if isinstance(error, OperationalError) and type(error.orig).__module__.startswith("psycopg"):
        # no SQLSTATE: libpq never got an answer (refused, timed out, the server went away)
        return StoreWriteFailed(name, "the database server cannot be reached")
    code = getattr(error.orig, "sqlite_errorcode", None)
    if not isinstance(error.orig, sqlite3.Error) or not isinstance(code, int):
        return None
    primary = code & 0xFF
    if primary == _FULL:
        return StoreFull(name, "the disk is full")
    if primary == _READONLY:
        return StoreWriteFailed(name, "the database file is read-only")
    if primary in (_IOERR, _CANTOPEN):
        return StoreWriteFailed(name, "the disk reported an error")
    if primary in (_CORRUPT, _NOTADB):
        return StoreDamaged(
            name, f"it is damaged or not a SQLite database ({error.orig}); restore it from a backup or move it away"
        )
    return None


def _postgresql(name: str, sqlstate: str) -> StoreError | None:
    """PostgreSQL's SQLSTATE codes (its manual's appendix A) for what is outside certops: the
    transaction was rolled back, nothing of it kept."""
    if sqlstate == "53100":
        return StoreFull(name, "the database server's disk is full")
    if sqlstate.startswith("53"):
        return StoreWriteFailed(name, "the database server is out of resources")
    if sqlstate == "25006":
        return StoreWriteFailed(name, "the database is read-only (a standby server?)")
    if sqlstate.startswith("08"):
        return StoreWriteFailed(name, "the connection to the database server was lost")
    if sqlstate.startswith("57P"):
        return StoreWriteFailed(name, "the database server is shutting down or restarting")
    return None


def reason(error: BaseException) -> str:
    """A driver's message on one line (libpq's run over several), for a sentence."""
    text = str(getattr(error, "orig", None) or error)
    return "; ".join(line.strip() for line in text.splitlines() if line.strip()) or type(error).__name__
