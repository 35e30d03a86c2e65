"""The store: every port of `bot.core.ports` on one SQLAlchemy engine."""

from __future__ import annotations

from bot.store.events import AuditStore, EventsStore
from bot.store.incidents import IncidentsStore
from bot.store.lease import LeaseStore
from bot.store.outbox import OutboxStore
from bot.store.reports import ReportsStore
from bot.store.requests import RequestsStore
from bot.store.results import ResultsStore
from bot.store.vantage import VantageStore


class SqlStore(
    ResultsStore,
    IncidentsStore,
    RequestsStore,
    AuditStore,
    OutboxStore,
    EventsStore,
    ReportsStore,
    LeaseStore,
    VantageStore,
):
    """`SqlStore(database)` opens the database (a file name, ":memory:" or a SQLAlchemy URL),
    takes the one-process lock of a SQLite file, and migrates it; `close()` lets both go.

    Each aggregate's methods live in their own module; they share only `Database`'s engine and
    transactions."""
