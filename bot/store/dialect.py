"""Everything that differs between database backends, in one place: how an engine is made, and
"insert unless there" / "insert or replace". The rest of the store is plain SQLAlchemy Core.

SQLite and PostgreSQL (through psycopg 3) run the same statements. On both, the writers take
turns: SQLite's BEGIN IMMEDIATE, PostgreSQL's transaction-scoped advisory lock (WRITE_LOCK), so a
compare-and-set reads and writes with no other writer in between, across processes and replicas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

# an execution option naming a connection that will write: SQLite then takes the write lock at
# BEGIN, so that a compare-and-set's read and its write see the same database
WRITE = "certops_write"

# the key of PostgreSQL's advisory lock every writing transaction takes first ("cert" in ASCII):
# released by COMMIT or ROLLBACK, so a lost connection never leaves it held
WRITE_LOCK = 0x63657274

# seconds to wait for a PostgreSQL server before saying it cannot be reached (a URL may set its own)
CONNECT_TIMEOUT = 10


def make_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    if url.get_backend_name() == "postgresql":
        return _postgresql_engine(url)
    return create_engine(url, pool_pre_ping=True)


def _postgresql_engine(url: URL) -> Engine:
    connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": CONNECT_TIMEOUT}
    engine = create_engine(
        url,
        pool_pre_ping=True,
        connect_args=connect_args,
        # an INSERT's rowcount (insert_ignore's answer) is read before psycopg's cursor closes
        execution_options={"preserve_rowcount": True},
    )

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # psycopg opens the transaction at the first statement: this one
        if connection.get_execution_options().get(WRITE, False):
            # writers in turn, under READ COMMITTED: each statement then sees every earlier
            # writer's commit (a snapshot taken before the lock was granted would not)
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
        else:
            # a reader's queries all see one snapshot, as a SQLite read transaction does
            connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")

    return engine


def is_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def shares_one_connection(engine: Engine) -> bool:
    """True when every caller gets the same DBAPI connection (an in-memory SQLite database lives
    in exactly one): the store must then run one transaction at a time itself."""
    return isinstance(engine.pool, StaticPool)


def _sqlite_engine(url: URL) -> Engine:
    memory = is_memory(url)
    engine = create_engine(
        url,
        # the pool hands a connection to one thread at a time, but not always the same thread
        connect_args={"check_same_thread": False},
        # an in-memory database exists only inside its one connection
        poolclass=StaticPool if memory else None,
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # the sqlite3 module's own BEGIN handling skips SELECTs and DDL: SQLAlchemy emits BEGIN
        # itself instead (the recipe in SQLAlchemy's SQLite docs, "Serializable isolation")
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
        cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; fsync at checkpoints only
        cursor.execute("PRAGMA busy_timeout=5000")  # wait for another writer instead of failing
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # IMMEDIATE takes the write lock now: two compare-and-sets never both read the old state
        # (a DEFERRED transaction would only fail with "database is locked" when it tried to write)
        immediate = connection.get_execution_options().get(WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


_UPSERTS: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], Any] = {}


def insert_ignore(connection: Connection, table: Table, values: Mapping[str, Any], keys: Sequence[str]) -> bool:
    """Inserts the row unless one with the same `keys` exists; True when it was inserted."""
    name = connection.dialect.name
    if name in ("sqlite", "postgresql"):
        shape = (name, table.name, tuple(keys), ())
        statement = _UPSERTS.get(shape)  # compiled once, as upsert's (every chat event comes here)
        if statement is None:
            dialect_insert = sqlite.insert if name == "sqlite" else postgresql.insert
            statement = dialect_insert(table).on_conflict_do_nothing(index_elements=list(keys))
            _UPSERTS[shape] = statement
        return connection.execute(statement, dict(values)).rowcount == 1
    # any other backend: let the key refuse the duplicate, inside a savepoint to keep the transaction
    try:
        with connection.begin_nested():
            connection.execute(table.insert().values(dict(values)))
    except IntegrityError:
        return False
    return True


def upsert(connection: Connection, table: Table, values: Mapping[str, Any], keys: Sequence[str]) -> None:
    """Inserts the row, or replaces the other columns of the one with the same `keys`."""
    others = tuple(column for column in values if column not in keys)
    name = connection.dialect.name
    if name in ("sqlite", "postgresql"):
        # one statement per shape, the values bound at execution: it compiles once and is then
        # served from SQLAlchemy's cache (a statement with literal values is rebuilt every call)
        shape = (name, table.name, tuple(keys), others)
        statement = _UPSERTS.get(shape)
        if statement is None:
            dialect_insert = sqlite.insert if name == "sqlite" else postgresql.insert
            base = dialect_insert(table)
            statement = (
                base.on_conflict_do_update(index_elements=list(keys), set_={c: base.excluded[c] for c in others})
                if others
                else base.on_conflict_do_nothing(index_elements=list(keys))
            )
            _UPSERTS[shape] = statement
        connection.execute(statement, dict(values))
        return
    match = [table.c[key] == values[key] for key in keys]
    if not others or connection.execute(table.update().where(*match).values(others)).rowcount == 0:
        insert_ignore(connection, table, values, keys)
