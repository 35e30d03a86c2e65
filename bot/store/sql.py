"""The store: every port of `bot.core.ports` on one SQLAlchemy engine."""

from __future__ import annotations

from bot.store.events import AuditStore, EventsStore
from bot.store.incidents import IncidentsStore
from bot.store.outbox import OutboxStore
from bot.store.requests import RequestsStore
from bot.store.results import ResultsStore


class SqlStore(ResultsStore, IncidentsStore, RequestsStore, AuditStore, OutboxStore, EventsStore):
    """`SqlStore(database)` opens the database (a file name, ":memory:" or a SQLAlchemy URL),
    takes the one-process lock of a SQLite file, and migrates it; `close()` lets both go.

    Each aggregate's methods live in their own module; they share only `Database`'s engine and
    transactions."""
