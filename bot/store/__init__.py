"""Durable state: probe results and site health, incidents and their transitions, action
requests and approvals, the outbox, the audit log, mutes, and the ids of chat events handled.

`open_store` gives a `SqlStore`, which implements `bot.core.ports.StorePort` on SQLAlchemy Core
(SQLite, or PostgreSQL through psycopg 3), its schema kept by the Alembic revisions in `migrations/`, run at open.
"""

from __future__ import annotations

import os

from bot.core.model import ActionRequest
from bot.store.errors import StoreBusy, StoreDamaged, StoreError, StoreFull, StoreWriteFailed
from bot.store.location import resolved_database_path
from bot.store.sql import SqlStore
from bot.store.times import iso, parse_iso, utcnow

# the name callers have always used; `Store(path)` opens as `open_store(path)` does
Store = SqlStore


def open_store(database: str | os.PathLike[str], *, password: str | None = None) -> SqlStore:
    """Opens `database`: a file name or path (relative to the working directory), ":memory:", or
    a SQLAlchemy URL ("sqlite:///certops.db", "postgresql://certops@db.example/certops", whose
    `password` comes from [bot] database_password_env or _file). Raises StoreBusy when another
    certops process holds the SQLite file, StoreError when it cannot be used (a newer schema, an
    unsupported URL, a server that cannot be reached)."""
    return SqlStore(database, password=password)


def append_audit(
    database: str | os.PathLike[str],
    actor: str,
    event: str,
    subject: str,
    outcome: str,
    detail: str,
    *,
    password: str | None = None,
) -> None:
    """One audit entry from a short-lived command (`certops host`), even while `certops run`
    owns the database: SQLite serialises the two writers; the lock only says who runs the loop."""
    try:
        store = SqlStore(database, password=password)
    except StoreBusy:
        store = SqlStore(database, guest=True, password=password)
    try:
        store.audit(actor, event, subject, outcome, detail)
    finally:
        store.close()


__all__ = [
    "ActionRequest",  # re-exported from bot.core.model for the callers that import it from here
    "SqlStore",
    "Store",
    "StoreBusy",
    "StoreDamaged",
    "StoreError",
    "StoreFull",
    "StoreWriteFailed",
    "append_audit",
    "iso",
    "open_store",
    "parse_iso",
    "resolved_database_path",
    "utcnow",
]
