"""`certops db`: the database's schema, and moving an installation from SQLite to PostgreSQL.

  certops db check    is the database reachable, and at the newest schema revision? Changes
                      nothing. Exit code: 0 newest, 1 needs `certops db upgrade`, 2 cannot tell
                      (unreachable, refused, written by a newer certops).
  certops db upgrade  migrates it to the newest revision (certops run also does at start).
  certops db copy --from certops.db --to postgresql://certops@db.example/certops
                      copies every table, ids and sequence numbers kept, from one database into
                      an empty one, in one read transaction and one write transaction, and
                      compares the row counts before committing. The source may be in use by
                      certops run: it is read as a guest, as one consistent snapshot.

The database is [bot] database of the config file unless --database names one; the password of a
postgresql:// URL comes from --password-env VARIABLE, or else the config's database_password_env
or database_password_file (libpq's own PGPASSWORD and ~/.pgpass work too). No message shows it.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.config import ConfigError, load_config
from bot.config.secrets import SecretUnavailable

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Connection

    from bot.config.model import Config
    from bot.store.base import Database
    from bot.store.migrate import SchemaState

EXIT_OK, EXIT_NEEDS_UPGRADE, EXIT_ERROR = 0, 1, 2
DEFAULT_CONFIG = "certops.toml"
BATCH = 500  # rows per INSERT of a copy

# what a table's rows are called in the copy's report
NOUNS = {
    "incidents": "incidents",
    "incident_transitions": "incident transitions",
    "action_requests": "action requests",
    "approvals": "approvals",
    "audit": "audit entries",
    "outbox": "outbox messages",
    "card_refs": "card references",
    "site_health": "site health rows",
    "probe_results": "probe results",
    "mutes": "mutes",
    "seen_events": "seen chat events",
    "host_reports": "host reports",
}


class Refused(Exception):
    """A sentence for the operator; the command exits 2 after printing it."""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "db",
        help="check, upgrade or copy the database (SQLite to PostgreSQL)",
        description="The database's schema revision, and moving certops from a SQLite file to PostgreSQL.",
    )
    sub = p.add_subparsers(dest="db_command", metavar="COMMAND", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("-c", "--config", help=f"config file to read [bot] database from (default {DEFAULT_CONFIG})")
        q.add_argument(
            "--password-env",
            metavar="VARIABLE",
            help="the environment variable holding the PostgreSQL password "
            "(default: the config's database_password_env or database_password_file)",
        )

    q = sub.add_parser(
        "check",
        help="is the database reachable and at the newest schema? (changes nothing)",
        description="Says whether the database can be reached and is at the newest schema revision, "
        "without changing it. Exit code: 0 newest, 1 needs certops db upgrade, 2 unreachable or refused.",
    )
    q.add_argument("--database", metavar="DATABASE", help="a file name or URL instead of the config's [bot] database")
    common(q)
    q.set_defaults(handler=cmd_check)

    q = sub.add_parser(
        "upgrade",
        help="migrate the database to the newest schema",
        description="Migrates the database to the newest schema revision (certops run also does this at start). "
        "A SQLite file must not be in use by certops run.",
    )
    q.add_argument("--database", metavar="DATABASE", help="a file name or URL instead of the config's [bot] database")
    common(q)
    q.set_defaults(handler=cmd_upgrade)

    q = sub.add_parser(
        "copy",
        help="copy everything from one database (a SQLite file) into an empty one (PostgreSQL)",
        description="Copies every table (incidents, transitions, requests, approvals, the audit log, the "
        "outbox, ...) with their ids from --from into an empty database --to, migrated first, and checks "
        "the row counts. --from may be in use by certops run: the copy is one consistent snapshot of it, "
        "and what certops run writes after that stays in --from only, so stop it before switching "
        "[bot] database. A --to that already holds rows is refused.",
    )
    q.add_argument("--from", dest="source", required=True, metavar="DATABASE", help="the database to copy")
    q.add_argument("--to", dest="target", required=True, metavar="DATABASE", help="the empty database to fill")
    common(q)
    q.set_defaults(handler=cmd_copy)


@dataclass(frozen=True)
class _Target:
    database: str
    shown: str  # as messages name it: an absolute path, or the URL without a password
    password: str | None


def cmd_check(args: argparse.Namespace) -> int:
    try:
        target = _target(args, args.database)
        return _check(target)
    except Refused as refused:
        print(f"certops db check: {refused}", file=sys.stderr)
        return EXIT_ERROR


def cmd_upgrade(args: argparse.Namespace) -> int:
    try:
        target = _target(args, args.database)
        _upgrade(target)
    except Refused as refused:
        print(f"certops db upgrade: {refused}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def cmd_copy(args: argparse.Namespace) -> int:
    try:
        password = _password(args, needed=_is_postgresql(args.source) or _is_postgresql(args.target))
        source = _Target(args.source, _shown(args.source), password)
        target = _Target(args.target, _shown(args.target), password)
        copy(source, target)
    except Refused as refused:
        print(f"certops db copy: {refused}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


# --- check and upgrade -------------------------------------------------------------------------


def _check(target: _Target) -> int:
    state = _state(target)
    if state is None:
        print(f"{target.shown}: no database there yet; certops db upgrade (or certops run) creates it")
        return EXIT_NEEDS_UPGRADE
    if state.unknown:
        print(
            f"{target.shown} was written by a newer certops (schema revision {', '.join(state.unknown)}); "
            "upgrade certops or restore a backup",
            file=sys.stderr,
        )
        return EXIT_ERROR
    if state.is_newest:
        print(f"{target.shown}: reachable, at schema revision {state.head}, the newest")
        return EXIT_OK
    where = (
        "is empty"
        if state.empty
        else "was made by certops 0.1 (no schema revision)"
        if state.legacy
        else f"is at schema revision {', '.join(state.current)}"
    )
    print(f"{target.shown}: reachable, but {where}; the newest is {state.head}: run certops db upgrade")
    return EXIT_NEEDS_UPGRADE


def _upgrade(target: _Target) -> None:
    from bot.store import StoreBusy, StoreError, open_store

    before = _state(target)
    if before is not None and before.unknown:
        raise Refused(
            f"{target.shown} was written by a newer certops (schema revision {', '.join(before.unknown)}); "
            "upgrade certops or restore a backup"
        )
    try:
        store = open_store(target.database, password=target.password)
    except StoreBusy:
        raise Refused(
            f"certops run is using {target.shown}; it upgrades the database itself when it starts, "
            "or stop it and run certops db upgrade again"
        ) from None
    except StoreError as error:
        raise Refused(str(error)) from None
    store.close()
    after = _state(target)
    head = after.head if after is not None else "?"
    if before is not None and before.is_newest:
        print(f"{target.shown}: already at schema revision {head}, the newest")
    else:
        was = (
            "empty"
            if before is None or before.empty
            else "certops 0.1's tables"
            if before.legacy
            else f"revision {', '.join(before.current)}"
        )
        print(f"{target.shown}: upgraded to schema revision {head} (was {was})")


def _state(target: _Target) -> SchemaState | None:
    """The schema's state, read as a guest (no lock, no migration); None for a SQLite file that
    does not exist (it is not created here)."""
    from bot.store.migrate import schema_state

    database = _guest(target, missing_ok=True)
    if database is None:
        return None
    try:
        with _reading(database) as connection:
            return schema_state(connection)
    finally:
        database.close()


# --- copy ------------------------------------------------------------------------------------------


def copy(source: _Target, target: _Target) -> dict[str, int]:
    """Copies every table from `source` into the empty `target` (migrated first); the rows copied
    per table. Raises Refused with the reason, leaving `target` with no rows of the copy."""
    from bot.store import StoreBusy, StoreError, open_store
    from bot.store.location import claim_ownership, locate
    from bot.store.migrate import schema_state
    from bot.store.schema import metadata

    if _same(source, target):
        raise Refused(f"--from and --to are the same database ({source.shown})")
    reader = _guest(source, missing_ok=False)
    assert reader is not None
    lock: int | None = None
    try:
        # while certops run owns the file it keeps writing: the copy is still one snapshot
        source_location = locate(source.database)
        if source_location.file is not None:
            try:
                lock = claim_ownership(source_location)  # and no certops run starts on it meanwhile
            except StoreBusy:
                lock = None
                print(
                    f"certops db copy: certops run is using {source.shown}: copying it as it is now; what it "
                    "writes after this stays there only, so stop it before switching [bot] database",
                    file=sys.stderr,
                )
        with _reading(reader) as read:
            state = schema_state(read)
            if state.unknown:
                raise Refused(
                    f"{source.shown} was written by a newer certops (schema revision {', '.join(state.unknown)})"
                )
            if not state.is_newest:
                raise Refused(
                    f"{source.shown} is not at the newest schema revision ({state.head}): run certops db upgrade "
                    "on it first (or start the new certops on it once)"
                )
            try:
                writer = open_store(target.database, password=target.password)
            except StoreBusy:
                raise Refused(f"another certops process is using {target.shown}; stop it first") from None
            except StoreError as error:
                raise Refused(str(error)) from None
            try:
                copied = _copy_tables(read, writer, list(metadata.sorted_tables), source, target)
            finally:
                writer.close()
    finally:
        reader.close()
        if lock is not None:
            os.close(lock)
    summary = _rows(copied)
    print(f"copied {summary} from {source.shown} to {target.shown}; row counts checked")
    return copied


def _copy_tables(
    read: Connection, writer: Database, tables: list[Table], source: _Target, target: _Target
) -> dict[str, int]:
    from sqlalchemy import func, select
    from sqlalchemy.exc import DBAPIError

    from bot.store.errors import StoreError, reason

    copied: dict[str, int] = {}
    try:
        with writer._write() as write:
            held = {table.name: _count(write, table) for table in tables}
            if any(held.values()):
                raise Refused(
                    f"{target.shown} already holds {_rows(held, only_some=True)}: certops db copy fills only an "
                    "empty database (there is no --force; drop and create the database again to start over)"
                )
            for table in tables:
                raw = _raw(table)
                query = select(*raw.columns).order_by(*raw.primary_key.columns)
                batch: list[dict[str, object]] = []
                count = 0
                for row in read.execution_options(yield_per=BATCH).execute(query):
                    batch.append(dict(row._mapping))
                    if len(batch) == BATCH:
                        write.execute(raw.insert(), batch)
                        count += len(batch)
                        batch = []
                if batch:
                    write.execute(raw.insert(), batch)
                    count += len(batch)
                copied[table.name] = count
                _continue_sequence(read, write, table)
            for table in tables:
                expected = read.execute(select(func.count()).select_from(table)).scalar_one()
                found = _count(write, table)
                if found != expected or found != copied[table.name]:
                    raise Refused(
                        f"{table.name}: {source.shown} has {expected} rows but {target.shown} would have {found}; "
                        "nothing was copied"
                    )
    except DBAPIError as error:
        raise Refused(f"the copy into {target.shown} failed and was undone: {reason(error)}") from None
    except StoreError as error:
        raise Refused(f"the copy into {target.shown} failed and was undone: {error}") from None
    return copied


def _rows(counts: dict[str, int], *, only_some: bool = False) -> str:
    """ "2 incidents, 4 incident transitions, ...": NOUNS' tables in its order, then any other."""
    order = [*NOUNS, *sorted(counts.keys() - NOUNS.keys())]
    return ", ".join(
        f"{counts[name]} {NOUNS.get(name, name)}"
        for name in order
        if name in counts and (counts[name] or not only_some) and (name in NOUNS or counts[name])
    )


def _raw(table: Table) -> Table:
    """`table` with its values as the database holds them (text, not parsed times or JSON), so a
    copy writes back exactly what it read; booleans and integers stay typed for PostgreSQL."""
    from sqlalchemy import Boolean, Column, Integer, MetaData, Table, Text

    def plain(column: Column[object]) -> Column[object]:
        kind = Boolean if isinstance(column.type, Boolean) else Integer if isinstance(column.type, Integer) else Text
        return Column(column.name, kind(), primary_key=column.primary_key, autoincrement=False)

    return Table(table.name, MetaData(), *(plain(column) for column in table.columns))


def _serial(table: Table) -> str | None:
    """The name of the table's integer key that the database numbers itself (seq), if any."""
    from sqlalchemy import Integer

    keys = list(table.primary_key.columns)
    if len(keys) == 1 and isinstance(keys[0].type, Integer) and keys[0].autoincrement in (True, "auto"):
        return keys[0].name
    return None


def _continue_sequence(read: Connection, write: Connection, table: Table) -> None:
    """The target numbers the next row after the source's highest number ever given (SQLite's
    AUTOINCREMENT remembers it even when the newest row is gone): rows inserted with explicit
    ids leave PostgreSQL's sequence where it was."""
    from sqlalchemy import func, select, text

    column = _serial(table)
    if column is None:
        return
    high = read.execute(select(func.max(table.c[column]))).scalar_one() or 0
    high = max(high, _remembered(read, table.name, column))
    if write.dialect.name == "postgresql":
        sequence = write.execute(text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column}).scalar()
        if sequence is not None:
            # setval(s, n, false): the next value is n itself
            write.execute(text("SELECT setval(:s, :n, false)"), {"s": sequence, "n": high + 1})
    elif write.dialect.name == "sqlite" and high:
        done = write.execute(text("UPDATE sqlite_sequence SET seq = :n WHERE name = :t"), {"n": high, "t": table.name})
        if done.rowcount == 0:
            write.execute(text("INSERT INTO sqlite_sequence (name, seq) VALUES (:t, :n)"), {"t": table.name, "n": high})


def _remembered(read: Connection, table: str, column: str) -> int:
    """The highest number the source's own counter has handed out for `table`, or 0."""
    from sqlalchemy import text

    if read.dialect.name == "sqlite":
        value = read.execute(text("SELECT seq FROM sqlite_sequence WHERE name = :t"), {"t": table}).scalar()
        return int(value or 0)
    if read.dialect.name == "postgresql":
        sequence = read.execute(text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table, "c": column}).scalar()
        if sequence is None:
            return 0
        # NULL until the sequence has given a number
        value = read.execute(text("SELECT pg_sequence_last_value(CAST(:s AS regclass))"), {"s": sequence}).scalar()
        return int(value or 0)
    return 0


def _count(connection: Connection, table: Table) -> int:
    from sqlalchemy import func, select

    return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


# --- opening ---------------------------------------------------------------------------------------


def _guest(target: _Target, *, missing_ok: bool) -> Database | None:
    """The database opened beside any certops run (no lock, no migration); None when it is a
    SQLite file that does not exist and `missing_ok`."""
    from bot.store import StoreError
    from bot.store.base import Database
    from bot.store.location import MEMORY, locate

    try:
        location = locate(target.database, password=target.password)
    except StoreError as error:
        raise Refused(str(error)) from None
    if location.file is None and location.name == MEMORY:
        raise Refused("the database is in memory: there is nothing to check, upgrade or copy")
    if location.file is not None and not location.file.exists():
        if missing_ok:
            return None
        raise Refused(f"there is no database at {target.shown}")
    try:
        return Database(target.database, guest=True, password=target.password)
    except StoreError as error:
        raise Refused(str(error)) from None


class _reading:
    """One read transaction on a guest database, its failures as Refused sentences."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._context = database._read()

    def __enter__(self) -> Connection:
        try:
            return self._context.__enter__()
        except Exception as error:
            raise _refusal(self._database.name, error) from None

    def __exit__(self, *exc: object) -> bool | None:
        try:
            return self._context.__exit__(*exc)  # type: ignore[arg-type]
        except Refused:
            raise
        except Exception as error:
            raise _refusal(self._database.name, error) from None


def _refusal(name: str, error: Exception) -> Refused:
    from sqlalchemy.exc import DBAPIError

    from bot.store.errors import StoreError, reason

    if isinstance(error, DBAPIError):
        return Refused(f"cannot reach {name}: {reason(error)}")
    if isinstance(error, StoreError):
        if isinstance(error.__cause__, DBAPIError):  # the server never answered, or refused us
            return Refused(f"cannot reach {name}: {reason(error.__cause__)}")
        return Refused(f"cannot use {name}: {error}")
    raise error


def _target(args: argparse.Namespace, database: str | None) -> _Target:
    config = _config(args, required=database is None)
    chosen = database if database is not None else config.bot.database if config is not None else "certops.db"
    password = _password(args, needed=_is_postgresql(chosen), config=config)
    return _Target(chosen, _shown(chosen), password)


def _config(args: argparse.Namespace, *, required: bool) -> Config | None:
    path = args.config or DEFAULT_CONFIG
    if not args.config and not required and not os.path.exists(path):
        return None
    try:
        return load_config(path)
    except ConfigError as exc:
        raise Refused(exc.render()) from None


def _password(args: argparse.Namespace, *, needed: bool, config: Config | None = None) -> str | None:
    """--password-env's variable, or the config's database_password_*; None when neither is given
    (libpq may still find one: PGPASSWORD, ~/.pgpass)."""
    if not needed:
        return None
    if args.password_env:
        value = os.environ.get(args.password_env)
        if not value:
            raise Refused(f"--password-env: the environment variable {args.password_env} is not set or empty")
        return value
    if config is None:
        config = _config(args, required=False)
    ref = config.bot.database_password if config is not None else None
    if ref is None:
        return None
    try:
        return ref.resolve()
    except SecretUnavailable as error:
        raise Refused(str(error)) from None


def _is_postgresql(database: str) -> bool:
    return database.startswith(("postgresql:", "postgresql+"))


def _shown(database: str) -> str:
    from bot.store import resolved_database_path

    return resolved_database_path(database)


def _same(source: _Target, target: _Target) -> bool:
    return _shown(source.database) == _shown(target.database)
