"""Schema migrations at open: from certops 0.1's tables, from nothing, and never over a newer schema."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from bot.core.model import IncidentState, RequestState, Severity, Step
from bot.store import StoreError, open_store
from bot.store.migrate import alembic_config, head_revision
from bot.store.schema import metadata
from tests.store.helpers import EXPIRED, T0, open_one, probe_result

# bot/store.py's SCHEMA in certops 0.1, verbatim: what every database made before migrations holds
TODAY_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS probe_results (
    site TEXT NOT NULL, via TEXT NOT NULL, path TEXT NOT NULL, status TEXT NOT NULL,
    checked_at TEXT NOT NULL, result_json TEXT NOT NULL,
    PRIMARY KEY (site, path)
);
CREATE TABLE IF NOT EXISTS incidents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL, site TEXT NOT NULL, state TEXT NOT NULL,
    summary TEXT NOT NULL, opened_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    acked_by TEXT, resolved_at TEXT
);
CREATE TABLE IF NOT EXISTS action_requests (
    token TEXT PRIMARY KEY, incident_id TEXT, site TEXT, host TEXT NOT NULL,
    action TEXT NOT NULL, args_json TEXT NOT NULL, target TEXT NOT NULL,
    state TEXT NOT NULL, requested_by TEXT NOT NULL,
    created_at TEXT NOT NULL, expires_at TEXT NOT NULL, result TEXT
);
CREATE TABLE IF NOT EXISTS approvals (
    token TEXT NOT NULL, principal TEXT NOT NULL, at TEXT NOT NULL,
    PRIMARY KEY (token, principal)
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL,
    event TEXT NOT NULL, subject TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS mutes (site TEXT PRIMARY KEY, until TEXT NOT NULL, by TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS seen_events (
    platform TEXT NOT NULL, event_id TEXT NOT NULL, at TEXT NOT NULL,
    PRIMARY KEY (platform, event_id)
);
"""


def todays_database(path: Path, *statements: str | tuple[str, tuple[object, ...]]) -> None:
    """A database as certops 0.1 left it: its schema, then `statements` (its rows; SQL, or SQL
    with its parameters)."""
    db = sqlite3.connect(path)
    db.executescript(TODAY_SCHEMA)
    for statement in statements:
        sql, params = (statement, ()) if isinstance(statement, str) else statement
        db.execute(sql, params)
    db.commit()
    db.close()


def raw(path: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def schema_differences(path: Path) -> list[object]:
    """What Alembic would change to make the database match bot/store/schema.py. One thing is
    let go: 0.1's DDL said "key TEXT PRIMARY KEY" without NOT NULL, which SQLite takes literally;
    rebuilding those tables to say it buys nothing (the store never writes a NULL key)."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
    finally:
        engine.dispose()
    keys = {(table.name, column.name) for table in metadata.tables.values() for column in table.primary_key}
    return [d for d in differences if not (isinstance(d, list) and _nullable_key(d, keys))]


def _nullable_key(difference: list[tuple[object, ...]], keys: set[tuple[str, str]]) -> bool:
    return all(change[0] == "modify_nullable" and (change[2], change[3]) in keys for change in difference)


TODAYS_INCIDENT = (
    "INSERT INTO incidents (id, site, state, summary, opened_at, updated_at, acked_by, resolved_at) VALUES "
    "('INC-0001', 'www', 'acked', 'the certificate expired', '2025-01-31T09:00:00Z', '2025-01-31T09:05:00Z',"
    " 'slack:U1', NULL)"
)
TODAYS_ROWS: tuple[str | tuple[str, tuple[object, ...]], ...] = (
    TODAYS_INCIDENT,
    "INSERT INTO incidents (id, site, state, summary, opened_at, updated_at, acked_by, resolved_at) VALUES "
    "('INC-0002', 'api', 'resolved', 'HTTP 503', '2025-01-30T08:00:00Z', '2025-01-30T08:30:00Z', NULL,"
    " '2025-01-30T08:30:00Z')",
    "INSERT INTO action_requests VALUES ('tok1', 'INC-0001', 'www', 'iis01', 'renew', '[\"r1\", \"--force\"]',"
    " 'renewal r1', 'running', 'slack:U1', '2025-01-31T09:06:00Z', '2025-01-31T09:16:00Z', NULL)",
    "INSERT INTO approvals VALUES ('tok1', 'slack:U2', '2025-01-31T09:07:00Z')",
    "INSERT INTO audit (at, actor, event, subject, outcome, detail) VALUES "
    "('2025-01-31T09:07:00Z', 'slack:U2', 'approve', 'tok1', 'ok', 'renew r1 on iis01')",
    "INSERT INTO mutes VALUES ('old', '2099-01-01T00:00:00Z', 'slack:U1')",
    "INSERT INTO seen_events VALUES ('slack', 'Ev01', '2025-01-31T09:07:00Z')",
    (
        "INSERT INTO probe_results VALUES ('www', 'public', 'public::443', 'critical', '2025-01-31T09:00:00Z', ?)",
        (json.dumps(probe_result("www", problems=(EXPIRED,)).to_json()),),
    ),
)


def test_a_database_made_by_todays_certops_keeps_its_data_and_reads_typed(tmp_path: Path) -> None:
    todays_database(tmp_path / "certops.db", *TODAYS_ROWS)
    store = open_store(str(tmp_path / "certops.db"))
    try:
        incident = store.incident("INC-0001")
        assert incident is not None
        assert (incident.subject, incident.site, incident.problem, incident.summary) == (
            "www",
            "www",
            "unknown",
            "the certificate expired",
        )
        assert (incident.state, incident.severity, incident.acked_by) == (
            IncidentState.ACKED,
            Severity.CRITICAL,
            "slack:U1",
        )
        assert incident.announced  # 0.1 posted every incident it opened
        assert incident.opened_at == T0
        assert incident.opened_at.tzinfo is not None
        assert (incident.details, incident.diagnosis) == ((), ())
        resolved = store.incident("INC-0002")
        assert resolved is not None
        assert resolved.resolved_at is not None
        assert not resolved.is_open
        assert [i.id for i in store.open_incidents("www")] == ["INC-0001"]

        request = store.request("tok1")
        assert request is not None
        assert (request.state, request.args, request.incident_id) == (
            RequestState.RUNNING,
            ("r1", "--force"),
            "INC-0001",
        )
        assert (request.created_at, request.expires_at) == ("2025-01-31T09:06:00Z", "2025-01-31T09:16:00Z")
        assert store.add_approval("tok1", "slack:U3") == ["slack:U2", "slack:U3"]
        [entry] = store.audit_log()
        assert (entry.at, entry.actor, entry.event, entry.detail) == (
            "2025-01-31T09:07:00Z",
            "slack:U2",
            "approve",
            "renew r1 on iis01",
        )
        assert store.muted_until("old") == dt.datetime(2099, 1, 1, tzinfo=dt.UTC)
        assert not store.first_time("slack", "Ev01")
        assert store.last_results("www") == [probe_result("www", problems=(EXPIRED,))]

        # and it goes on from there: the next incident id, transitions, an interrupted run
        assert open_one(store, "new").id == "INC-0003"
        assert (
            store.transition(
                "INC-0001",
                expected=[IncidentState.ACKED],
                new=IncidentState.RESOLVED,
                step=Step.VERIFIED,
                reason="ok",
                actor="probe",
                at=T0,
            )
            is not None
        )
        assert [r.token for r in store.fail_interrupted()] == ["tok1"]
    finally:
        store.close()
    assert raw(tmp_path / "certops.db", "SELECT version_num FROM alembic_version") == [(head_revision(),)]
    assert schema_differences(tmp_path / "certops.db") == []


def test_timestamps_written_to_the_second_are_widened_so_sql_orders_them_with_new_ones(tmp_path: Path) -> None:
    todays_database(tmp_path / "certops.db", *TODAYS_ROWS)
    open_store(str(tmp_path / "certops.db")).close()
    assert raw(tmp_path / "certops.db", "SELECT opened_at, updated_at, resolved_at FROM incidents ORDER BY seq") == [
        ("2025-01-31T09:00:00.000000Z", "2025-01-31T09:05:00.000000Z", None),
        ("2025-01-30T08:00:00.000000Z", "2025-01-30T08:30:00.000000Z", "2025-01-30T08:30:00.000000Z"),
    ]
    assert raw(tmp_path / "certops.db", "SELECT created_at, expires_at FROM action_requests") == [
        ("2025-01-31T09:06:00.000000Z", "2025-01-31T09:16:00.000000Z")
    ]
    assert raw(tmp_path / "certops.db", "SELECT checked_at FROM probe_results") == [("2025-01-31T09:00:00Z",)]


def test_a_second_open_incident_for_a_site_left_by_an_older_build_is_closed_by_the_upgrade(tmp_path: Path) -> None:
    todays_database(
        tmp_path / "certops.db",
        *TODAYS_ROWS[:1],
        TODAYS_INCIDENT.replace("INC-0001", "INC-0003").replace("'acked'", "'open'"),
    )
    store = open_store(str(tmp_path / "certops.db"))
    try:
        assert [i.id for i in store.open_incidents("www")] == ["INC-0003"]  # the newest stays open, as 0.1 used it
        closed = store.incident("INC-0001")
        assert closed is not None
        assert closed.state is IncidentState.RESOLVED
        assert closed.resolution
    finally:
        store.close()


def test_an_empty_database_is_built_from_scratch_to_the_newest_schema(tmp_path: Path) -> None:
    open_store(str(tmp_path / "certops.db")).close()
    assert raw(tmp_path / "certops.db", "SELECT version_num FROM alembic_version") == [(head_revision(),)]
    assert schema_differences(tmp_path / "certops.db") == []


def test_a_migrated_database_opens_again_unchanged(tmp_path: Path) -> None:
    todays_database(tmp_path / "certops.db", *TODAYS_ROWS)
    open_store(str(tmp_path / "certops.db")).close()
    before = raw(tmp_path / "certops.db", "SELECT * FROM incidents ORDER BY seq")
    open_store(str(tmp_path / "certops.db")).close()
    assert raw(tmp_path / "certops.db", "SELECT * FROM incidents ORDER BY seq") == before


def test_revision_0001_builds_exactly_todays_tables(tmp_path: Path) -> None:
    todays_database(tmp_path / "today.db")
    engine = create_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0001")
    engine.dispose()

    def shape(path: Path) -> dict[str, object]:
        tables = [str(name) for (name,) in raw(path, "SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            table: (
                # (name, type, NOT NULL, default, position in the primary key); a key column is NOT NULL
                # either way: SQLAlchemy says so in the DDL, where 0.1 left SQLite's laxer default
                [(c[1], c[2], bool(c[3]) or bool(c[5]), c[4], c[5]) for c in raw(path, f"PRAGMA table_info({table})")],
                sorted((bool(i[2]), i[3]) for i in raw(path, f"PRAGMA index_list({table})")),  # unique, origin
                "AUTOINCREMENT" in str(raw(path, "SELECT sql FROM sqlite_master WHERE name = ?", table)),
            )
            for table in tables
            if table not in ("alembic_version", "sqlite_sequence")
        }

    assert shape(tmp_path / "migrated.db") == shape(tmp_path / "today.db")
    assert len(shape(tmp_path / "today.db")) == 8


def test_an_incident_id_is_never_reused_after_the_upgrade_rebuilt_the_table(tmp_path: Path) -> None:
    todays_database(tmp_path / "certops.db", *TODAYS_ROWS)
    open_store(str(tmp_path / "certops.db")).close()
    [(sql,)] = raw(tmp_path / "certops.db", "SELECT sql FROM sqlite_master WHERE name = 'incidents'")
    assert "AUTOINCREMENT" in str(sql)


def test_a_database_written_by_a_newer_certops_is_refused_with_a_sentence(tmp_path: Path) -> None:
    open_store(str(tmp_path / "certops.db")).close()
    db = sqlite3.connect(tmp_path / "certops.db")
    db.execute("UPDATE alembic_version SET version_num = '0099'")
    db.commit()
    db.close()
    with pytest.raises(StoreError) as refused:
        open_store(str(tmp_path / "certops.db"))
    assert str(refused.value) == (
        f"{tmp_path / 'certops.db'} was written by a newer certops (schema revision 0099); "
        "upgrade certops or restore a backup"
    )
    assert raw(tmp_path / "certops.db", "SELECT version_num FROM alembic_version") == [("0099",)]
    open_store(":memory:").close()  # and the lock went with the refused store
    with pytest.raises(StoreError, match="newer certops"):
        open_store(str(tmp_path / "certops.db"))


def test_an_upgrade_that_fails_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    # a stray table in the way of 0002: the upgrade stops, and nothing of it stays
    todays_database(tmp_path / "certops.db", *TODAYS_ROWS, "CREATE TABLE outbox (x TEXT)")
    with pytest.raises(StoreError, match=r"cannot open .*outbox"):
        open_store(str(tmp_path / "certops.db"))
    tables = {name for (name,) in raw(tmp_path / "certops.db", "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "alembic_version" not in tables
    assert "incident_transitions" not in tables
    columns = [c[1] for c in raw(tmp_path / "certops.db", "PRAGMA table_info(incidents)")]
    assert "subject" not in columns
    assert raw(tmp_path / "certops.db", "SELECT opened_at FROM incidents WHERE id = 'INC-0001'") == [
        ("2025-01-31T09:00:00Z",)
    ]


def test_a_database_with_the_older_probe_results_layout_still_opens(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "certops.db")
    db.execute(
        "CREATE TABLE probe_results (site TEXT NOT NULL, via TEXT NOT NULL, address TEXT NOT NULL, "
        "status TEXT NOT NULL, checked_at TEXT NOT NULL, result_json TEXT NOT NULL, PRIMARY KEY (site, via, address))"
    )
    db.commit()
    db.close()
    store = open_store(str(tmp_path / "certops.db"))
    try:
        assert store.last_results("www") == []
        store.save_results("www", [probe_result("www")])
        assert [r.status.value for r in store.last_results("www")] == ["ok"]
    finally:
        store.close()
    assert schema_differences(tmp_path / "certops.db") == []


def test_a_database_from_before_some_tables_existed_gets_the_missing_ones(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "certops.db")
    db.executescript(TODAY_SCHEMA.split("CREATE TABLE IF NOT EXISTS mutes")[0])  # no mutes, no seen_events yet
    db.execute(TODAYS_INCIDENT)
    db.commit()
    db.close()
    store = open_store(str(tmp_path / "certops.db"))
    try:
        assert store.incident("INC-0001") is not None
        assert store.first_time("slack", "Ev01")
        assert store.muted_until("www") is None
    finally:
        store.close()
    assert schema_differences(tmp_path / "certops.db") == []
