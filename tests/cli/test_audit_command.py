"""`certops audit`: the audit log on the command line, filtered by time and host, as text or
JSON, read beside the `certops run` that owns the database."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.store import SqlStore, open_store
from bot.store.schema import audit

REPO = Path(__file__).resolve().parents[2]


def config_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "certops.toml"
    path.write_text(
        f'[bot]\ndatabase = "{tmp_path / "state.db"}"\n'
        '[[sites]]\nname = "www"\nurl = "https://www.example.com/"\nhost = "iis01"\n'
        '[[hosts]]\nname = "iis01"\naddress = "https://iis01.example.com:5986/wsman"\nusername = \'CONTOSO\\svc\'\n'
        'password_env = "CERTOPS_T_PW"\n' + extra
    )
    return path


def write_old(store: SqlStore, days: float, actor: str, event: str, subject: str, outcome: str) -> None:
    at = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    with store._write() as connection:
        connection.execute(
            audit.insert().values(at=at, actor=actor, event=event, subject=subject, outcome=outcome, detail="")
        )


@pytest.fixture
def owned(tmp_path: Path) -> Iterator[SqlStore]:
    """The database as `certops run` holds it: opened, migrated, and locked by this process."""
    store = open_store(tmp_path / "state.db")
    write_old(store, 3, "slack:U0OLD", "press", "repair-store 3A on iis01", "refused")
    store.audit("slack:U01", "press", "repair-store 3A on iis01", "refused", "not an approver")
    store.audit("certops", "run", "renew all on iis02", "ok", "renewed")
    store.audit("slack:U01", "heal", "www", "waiting", "INC-0001 has buttons for approvers")
    store.audit("slack:U02", "command", "/ssl audit iis01", "received", "C0123")
    store.audit("line:Uabc", "command", "/ssl status\x1b[31m", "received", "C1")
    try:
        yield store
    finally:
        store.close()


def audit_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["audit", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_audit_log_is_printed_oldest_first_while_another_process_owns_the_database(
    tmp_path: Path, owned: SqlStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = audit_cli(capsys, "-c", str(config_file(tmp_path)))
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 6
    assert lines[0].endswith("  slack:U0OLD  press  repair-store 3A on iis01  refused")
    assert lines[1].endswith("  slack:U01  press  repair-store 3A on iis01  refused  not an approver")
    assert lines[1][:20].endswith("Z")  # 2026-05-01T09:00:00Z: when, in UTC, first
    assert "  line:Uabc  command  /ssl status\\x1b[31m  received  C1" in lines[5]  # never a raw escape


def test_since_1d_leaves_out_older_entries(tmp_path: Path, owned: SqlStore, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = audit_cli(capsys, "--since", "1d", "-c", str(config_file(tmp_path)))
    assert code == 0
    assert "slack:U0OLD" not in out
    assert len(out.splitlines()) == 5
    code, out, _ = audit_cli(capsys, "--since", "4d", "-c", str(config_file(tmp_path)))
    assert "slack:U0OLD" in out
    day = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).date().isoformat()
    code, out, _ = audit_cli(capsys, "--since", day, "-c", str(config_file(tmp_path)))
    assert code == 0
    assert "slack:U0OLD" not in out


def test_host_keeps_the_entries_about_that_host_and_the_sites_it_serves(
    tmp_path: Path, owned: SqlStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = audit_cli(capsys, "--host", "iis01", "--since", "1d", "-c", str(config_file(tmp_path)))
    assert code == 0
    subjects = [line.split("  ")[3] for line in out.splitlines()]
    assert subjects == ["repair-store 3A on iis01", "www", "/ssl audit iis01"]


def test_json_prints_every_field_of_each_entry(
    tmp_path: Path, owned: SqlStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = audit_cli(capsys, "--json", "--host", "iis02", "-c", str(config_file(tmp_path)))
    assert code == 0
    [entry] = json.loads(out)
    assert set(entry) == {"seq", "at", "actor", "event", "subject", "outcome", "detail"}
    assert (entry["actor"], entry["event"], entry["subject"], entry["outcome"], entry["detail"]) == (
        "certops",
        "run",
        "renew all on iis02",
        "ok",
        "renewed",
    )


def test_a_host_that_is_not_configured_is_said_but_still_read(
    tmp_path: Path, owned: SqlStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = audit_cli(capsys, "--host", "iis02", "-c", str(config_file(tmp_path)))
    assert code == 0
    assert "certops audit: 'iis02' is not a [[hosts]] entry in" in err
    assert "renew all on iis02" in out


def test_limit_keeps_the_latest_and_says_there_may_be_more(
    tmp_path: Path, owned: SqlStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = audit_cli(capsys, "--limit", "2", "-c", str(config_file(tmp_path)))
    assert code == 0
    assert [line.split("  ")[1] for line in out.splitlines()] == ["slack:U02", "line:Uabc"]
    assert "certops audit: the latest 2 entries; --limit or --since shows more or fewer" in err


def test_no_database_yet_is_said_and_none_is_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = audit_cli(capsys, "-c", str(config_file(tmp_path)))
    assert code == 2
    assert out == ""
    assert f"certops audit: there is no database at {tmp_path / 'state.db'} yet (certops run creates it" in err
    assert not (tmp_path / "state.db").exists()


def test_a_since_that_is_neither_a_duration_nor_a_date_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = audit_cli(capsys, "--since", "yesterday", "-c", str(config_file(tmp_path)))
    assert code == 3
    assert "certops audit: --since must be a duration such as 1d, 2h or 30m, or a date such as 2026-05-01" in err


def test_an_invalid_config_is_listed_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "certops.toml"
    path.write_text('[bot]\ncolour = "red"\n')
    code, _, err = audit_cli(capsys, "-c", str(path))
    assert code == 2
    assert "bot.colour: unknown key" in err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_certops_audit_reads_what_a_running_certops_run_just_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "certops.toml"  # no sites, no hosts: the run reaches nothing outside this machine
    path.write_text(f'[bot]\nlisten = "127.0.0.1:{free_port()}"\ndatabase = "{tmp_path / "state.db"}"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run", "-c", str(path), "--console"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO), "USER": "alice",
             "LOGNAME": "alice"},
    )  # fmt: skip
    assert proc.stdin is not None
    try:
        proc.stdin.write("/ssl help\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 30
        found = ""
        while time.monotonic() < deadline and not found:
            code, out, err = audit_cli(capsys, "--since", "1h", "-c", str(path))
            if code == 0:
                found = next((line for line in out.splitlines() if "/ssl help" in line), "")
            time.sleep(0.2)
        assert found.endswith("  console:alice  command  /ssl help  received  console")
        assert proc.poll() is None  # certops run is still running, and still owns the database
        out, err = proc.communicate("quit\n", timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
