"""Brings a database to the schema this code knows, at open, in one transaction.

Three kinds of database arrive here: an empty one (upgraded from scratch); one made by certops
0.1, before Alembic (its tables but no `alembic_version`: adopted at revision 0001, then
upgraded); and one already under Alembic, upgraded from where it is, or refused when its revision
is one this code has never heard of (a newer certops wrote it, and guessing would lose data).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from bot.logs import logger
from bot.store.errors import StoreError

log = logger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")

# the tables of certops 0.1 (revision 0001): any of them without `alembic_version` means 0.1 made it
LEGACY_TABLES = frozenset(
    {"meta", "probe_results", "incidents", "action_requests", "approvals", "audit", "mutes", "seen_events"}
)


def alembic_config(connection: Connection | None = None) -> Config:
    """The configuration an alembic.ini would hold, built here so that nothing outside the
    package is needed; the connection travels to env.py in `attributes`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the store's migrations have no head revision"
    return head


@dataclass(frozen=True)
class SchemaState:
    """Where a database's schema is, read without changing anything (`certops db check`)."""

    current: tuple[str, ...]  # its alembic_version; () when it has none
    head: str  # the newest revision this code knows
    unknown: tuple[str, ...]  # revisions this code has never heard of: a newer certops wrote them
    legacy: bool  # certops 0.1's tables without alembic_version

    @property
    def is_newest(self) -> bool:
        return self.current == (self.head,)

    @property
    def empty(self) -> bool:
        return not self.current and not self.legacy


def schema_state(connection: Connection) -> SchemaState:
    known = {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    current = tuple(MigrationContext.configure(connection).get_current_heads())
    legacy = not current and bool(set(inspect(connection).get_table_names()) & LEGACY_TABLES)
    unknown = tuple(revision for revision in current if revision not in known)
    return SchemaState(current, head_revision(), unknown, legacy)


def upgrade(connection: Connection, name: str) -> None:
    """Upgrades the database behind `connection` (in its open transaction) to the newest
    revision; `name` is how the operator knows the database, for the refusal's sentence."""
    config = alembic_config(connection)
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    current = MigrationContext.configure(connection).get_current_heads()
    unknown = [revision for revision in current if revision not in known]
    if unknown:
        raise StoreError(
            f"{name} was written by a newer certops (schema revision {', '.join(unknown)}); "
            "upgrade certops or restore a backup"
        )
    if not current:
        tables = set(inspect(connection).get_table_names())
        if tables & LEGACY_TABLES:
            _adopt_legacy(connection, name, tables)
    command.upgrade(config, "head")


def _adopt_legacy(connection: Connection, name: str, tables: set[str]) -> None:
    """A certops 0.1 database: as 0.1 did at each open, an older probe_results layout (keyed by
    address, before paths) is dropped, not converted (it only holds the latest answers). The
    upgrade then runs 0001, which creates only what is missing (nothing for a database 0.1 made)
    and records 0001: the same as stamping it, but safe for builds older than 0.1."""
    log.info("adopting %s, made before schema migrations, as revision 0001", name)
    if "probe_results" in tables:
        columns = {column["name"] for column in inspect(connection).get_columns("probe_results")}
        if "path" not in columns:
            connection.exec_driver_sql("DROP TABLE probe_results")
