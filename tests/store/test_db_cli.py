"""`certops db check | upgrade | copy`: the schema's state without changing it, and moving an
installation from a SQLite file into an empty database (PostgreSQL, or another SQLite file)
without losing incidents, approvals, the audit log or where the numbering stands."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.config import ConfigError, load_config, missing_secrets
from bot.core.model import IncidentState, MessageKind, NewMessage, SiteHealth, Step
from bot.store import SqlStore, open_store
from bot.store.migrate import head_revision
from tests.store import postgres
from tests.store.helpers import EXPIRED, T0, minutes, open_one, probe_result

PASSWORD_ENV = ["--password-env", postgres.PASSWORD_VARIABLE]


@pytest.fixture(params=["sqlite", "postgresql"])
def empty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """An empty database to copy into, and the arguments that give its password."""
    if request.param == "sqlite":
        yield str(tmp_path / "target.db"), []
        return
    with postgres.fresh_database() as url:
        yield url, PASSWORD_ENV if postgres.password() else []


@pytest.fixture
def postgresql() -> Iterator[str]:
    with postgres.fresh_database() as url:
        yield url


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["db", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def installation(path: Path) -> None:
    """A SQLite database as certops run leaves it: an incident resolved after an approved
    renewal, one still open, its messages, the audit log, and the rest of the tables."""
    store = open_store(str(path))
    try:
        first = open_one(store, "www", at=T0)
        request = store.create_request(
            incident_id=first.id,
            site="www",
            host="iis01",
            action="renew",
            args=("r1", "--force"),
            target="renew r1",
            requested_by="slack:U1",
            ttl=600,
        )
        store.add_approval(request.token, "slack:U2")
        store.add_approval(request.token, "line:U3")
        store.transition(
            first.id,
            expected=[IncidentState.OPEN],
            new=IncidentState.RESOLVED,
            step=Step.VERIFIED,
            reason="the renewed certificate is served",
            actor="probe",
            at=minutes(30),
            changes={"resolution": "renewed"},
            messages=[NewMessage("slack", MessageKind.CARD, first.id, {"state": "resolved", "note": "日本語"})],
        )
        open_one(store, "api", at=minutes(40), host="iis02")
        gone = open_one(store, "old", at=minutes(50))
        store.audit("slack:U1", "request", request.token, "ok", "renew r1 on iis01")
        store.audit("slack:U2", "approve", request.token, "ok", "")
        store.save_card_ref(first.id, "slack", "C1/1700000000.0001")
        store.save_site_health(SiteHealth("www", consecutive_successes=3, flips=(minutes(1), minutes(30))))
        store.save_results("www", [probe_result("www", problems=(EXPIRED,))])
        store.mute("api", minutes(600), "slack:U1")
        store.first_time("slack", "Ev01")
        store.save_report("iis01", "self-heal", minutes(5), True, {"host": "iis01", "steps": []})
    finally:
        store.close()
    # the newest incident went away (by hand): AUTOINCREMENT still never hands out its number again
    db = sqlite3.connect(path)
    db.execute("DELETE FROM incidents WHERE id = ?", (gone.id,))
    db.commit()
    db.close()


def everything(store: SqlStore) -> dict[str, Any]:
    """What the ports give back, table by table."""
    incidents = store.incidents(limit=1000)
    return {
        "incidents": incidents,
        "transitions": {i.id: store.transitions(i.id) for i in incidents},
        "requests": {i.id: store.requests_for(i.id) for i in incidents},
        "audit": store.audit_log(1000),
        "outbox": store.pending(),
        "card": store.card_ref("INC-0001", "slack"),
        "health": store.site_health("www"),
        "results": store.last_results(),
        "mute": store.muted_until("api"),
        "reports": store.host_reports(),
    }


def test_a_copy_keeps_every_row_and_the_next_incident_gets_the_next_number(
    tmp_path: Path, empty: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "certops.db"
    installation(source)
    target, password = empty
    code, out, err = cli(capsys, "copy", "--from", str(source), "--to", target, *password)
    assert (code, err) == (0, "")
    assert "copied 2 incidents, 4 incident transitions, 1 action requests, 2 approvals, 2 audit entries" in out
    assert "1 host reports" in out
    assert "row counts checked" in out
    if password:
        assert postgres.password() not in out  # type: ignore[operator]

    before = open_store(str(source))
    after = open_store(target, password=postgres.password() if password else None)
    try:
        assert everything(after) == everything(before)
        request = before.requests_for("INC-0001")[0]
        assert after.add_approval(request.token, "slack:U4") == ["slack:U2", "line:U3", "slack:U4"]
        # INC-0003 was deleted: its number is not handed out again
        incident = open_one(after, "new", at=minutes(60))
        assert incident.id == "INC-0004"
        after.audit("cli:root", "test", "x", "ok")
        assert [e.seq for e in after.audit_log(10)] == [1, 2, 3]
        after.enqueue([NewMessage("line", MessageKind.NOTICE)], at=minutes(61))
        assert after.pending()[-1].seq == max(m.seq for m in before.pending()) + 1
    finally:
        before.close()
        after.close()


def test_a_copy_reads_a_database_certops_run_holds_as_one_snapshot(
    tmp_path: Path, empty: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "certops.db"
    installation(source)
    running = open_store(str(source))  # certops run owns the file
    try:
        target, password = empty
        code, out, err = cli(capsys, "copy", "--from", str(source), "--to", target, *password)
        assert code == 0
        assert f"certops run is using {source}: copying it as it is now" in err
        assert "stop it before switching [bot] database" in err
        assert "copied 2 incidents" in out
    finally:
        running.close()


def test_a_copy_into_a_database_that_holds_rows_is_refused_and_changes_nothing(
    tmp_path: Path, empty: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "certops.db"
    installation(source)
    target, password = empty
    store = open_store(target, password=postgres.password() if password else None)
    open_one(store, "mine")
    store.close()
    code, out, err = cli(capsys, "copy", "--from", str(source), "--to", target, *password)
    assert (code, out) == (2, "")
    assert "already holds 1 incidents, 1 incident transitions: certops db copy fills only an empty database" in err
    assert "there is no --force" in err
    store = open_store(target, password=postgres.password() if password else None)
    try:
        assert [i.subject for i in store.incidents()] == ["mine"]
    finally:
        store.close()


def test_a_copy_from_an_older_schema_or_onto_itself_or_from_nothing_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "certops.db"
    installation(source)
    code, _, err = cli(capsys, "copy", "--from", str(source), "--to", f"sqlite:///{source}")
    assert code == 2
    assert "--from and --to are the same database" in err
    code, _, err = cli(capsys, "copy", "--from", str(tmp_path / "none.db"), "--to", str(tmp_path / "t.db"))
    assert (code, err) == (2, f"certops db copy: there is no database at {tmp_path / 'none.db'}\n")
    assert not (tmp_path / "none.db").exists()
    db = sqlite3.connect(source)
    db.execute("UPDATE alembic_version SET version_num = '0002'")
    db.commit()
    db.close()
    code, _, err = cli(capsys, "copy", "--from", str(source), "--to", str(tmp_path / "t.db"))
    assert code == 2
    assert f"is not at the newest schema revision ({head_revision()}): run certops db upgrade" in err


def test_check_says_whether_a_sqlite_file_needs_an_upgrade_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "certops.db"
    code, out, _ = cli(capsys, "check", "--database", str(missing))
    assert code == 1
    assert "no database there yet" in out
    assert not missing.exists()
    code, out, _ = cli(capsys, "upgrade", "--database", str(missing))
    assert code == 0
    assert out == f"{missing}: upgraded to schema revision {head_revision()} (was empty)\n"
    code, out, _ = cli(capsys, "check", "--database", str(missing))
    assert (code, out) == (0, f"{missing}: reachable, at schema revision {head_revision()}, the newest\n")
    code, out, _ = cli(capsys, "upgrade", "--database", str(missing))
    assert (code, out) == (0, f"{missing}: already at schema revision {head_revision()}, the newest\n")

    db = sqlite3.connect(missing)
    db.execute("UPDATE alembic_version SET version_num = '0002'")
    db.commit()
    db.close()
    code, out, _ = cli(capsys, "check", "--database", str(missing))
    assert code == 1
    assert f"is at schema revision 0002; the newest is {head_revision()}: run certops db upgrade" in out
    db = sqlite3.connect(missing)
    db.execute("UPDATE alembic_version SET version_num = '0099'")
    db.commit()
    db.close()
    code, _, err = cli(capsys, "check", "--database", str(missing))
    assert code == 2
    assert "was written by a newer certops (schema revision 0099)" in err


def test_upgrade_refuses_a_sqlite_file_certops_run_holds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    running = open_store(str(tmp_path / "certops.db"))
    try:
        code, _, err = cli(capsys, "upgrade", "--database", str(tmp_path / "certops.db"))
        assert code == 2
        assert "certops run is using" in err
        code, _, _ = cli(capsys, "check", "--database", str(tmp_path / "certops.db"))  # a guest: no lock needed
        assert code == 0
    finally:
        running.close()


def test_check_and_upgrade_a_postgresql_database_with_the_configs_password(
    tmp_path: Path, postgresql: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if postgres.password() is None:
        pytest.skip("the test server takes no password")
    config = tmp_path / "certops.toml"
    config.write_text(
        f'[bot]\ndatabase = "{postgresql}"\ndatabase_password_env = "{postgres.PASSWORD_VARIABLE}"\n',
        encoding="utf-8",
    )
    code, out, _ = cli(capsys, "check", "-c", str(config))
    assert code == 1
    assert out == f"{postgresql}: reachable, but is empty; the newest is {head_revision()}: run certops db upgrade\n"
    code, out, _ = cli(capsys, "upgrade", "-c", str(config))
    assert (code, out) == (0, f"{postgresql}: upgraded to schema revision {head_revision()} (was empty)\n")
    code, out, _ = cli(capsys, "check", "-c", str(config))
    assert (code, out) == (0, f"{postgresql}: reachable, at schema revision {head_revision()}, the newest\n")


def test_check_of_a_postgresql_server_that_refuses_says_why_without_the_password(
    postgresql: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if postgres.password() is None:
        pytest.skip("the test server takes no password")
    monkeypatch.setenv("WRONG_PASSWORD", "hunter2-not-it")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    code, out, err = cli(capsys, "check", "--database", postgresql, "--password-env", "WRONG_PASSWORD")
    assert (code, out) == (2, "")
    assert "password authentication failed" in err
    assert "hunter2" not in err
    code, _, err = cli(capsys, "check", "--database", postgresql, "--password-env", "NOT_SET_ANYWHERE")
    assert code == 2
    assert "the environment variable NOT_SET_ANYWHERE is not set" in err


def test_check_of_a_server_that_cannot_be_reached_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "check", "--database", f"postgresql://certops@127.0.0.1:{_closed_port()}/certops")
    assert (code, out) == (2, "")
    assert "cannot reach postgresql://certops@127.0.0.1:" in err
    assert "Connection refused" in err


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_copy_keeps_utc_times_exactly(
    tmp_path: Path, empty: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "certops.db"
    store = open_store(str(source))
    at = dt.datetime(2025, 1, 31, 9, 0, 0, 123456, tzinfo=dt.UTC)
    open_one(store, "www", at=at)
    store.close()
    target, password = empty
    assert cli(capsys, "copy", "--from", str(source), "--to", target, *password)[0] == 0
    copied = open_store(target, password=postgres.password() if password else None)
    try:
        assert copied.open_incidents()[0].opened_at == at
    finally:
        copied.close()


def test_the_config_takes_the_password_from_outside_and_refuses_one_in_the_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "certops.toml"
    config.write_text(
        '[bot]\ndatabase = "postgresql://certops@db.example/certops?sslmode=verify-full"\n'
        'database_password_env = "CERTOPS_DB_PASSWORD"\n',
        encoding="utf-8",
    )
    monkeypatch.delenv("CERTOPS_DB_PASSWORD", raising=False)
    loaded = load_config(config)
    assert loaded.bot.database_password is not None
    assert loaded.bot.database_password.env == "CERTOPS_DB_PASSWORD"
    assert any("CERTOPS_DB_PASSWORD" in problem for problem in missing_secrets(loaded))  # check-config says so
    monkeypatch.setenv("CERTOPS_DB_PASSWORD", "s3cret")
    assert missing_secrets(loaded) == []

    config.write_text('[bot]\ndatabase = "postgresql://certops:s3cret@db.example/certops"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(config)
    assert "must not contain a password: secrets never go in the config file" in refused.value.render()
    assert "s3cret" not in refused.value.render()
