"""`certops host ...` through argparse, a real config file and the simulator."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bot.host_cli import register
from host_actions.simulator import Faults
from tests.host_actions.conftest import PASSWORD_ENV, SimFactory


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="certops")
    register(parser.add_subparsers(dest="command"))
    return parser


def _config(tmp_path: Path, url: str) -> str:
    path = tmp_path / "certops.toml"
    path.write_text(
        f"""
[bot]
database = "{tmp_path / "state.db"}"

[[hosts]]
name = "iis01"
address = "{url}"
transport = "basic"
username = "certops"
password_env = "{PASSWORD_ENV}"
allow_insecure_basic = true
timeout = "10s"
""",
        encoding="utf-8",
    )
    return str(path)


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return int(args.handler(args))


def test_host_diagnose_prints_findings_and_the_commands_that_fix_them(
    make_sim: SimFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, _host = make_sim()
    code = _run(["host", "diagnose", "iis01", "-c", _config(tmp_path, sim.url)])
    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith("iis01: 3 finding(s), 1 critical.")
    assert "-> certops host repair-store iis01 " in out
    assert "-> certops host add-post-renew-step iis01 mZ3Yk1fWbkW0yJbqv7NfVw" in out


def test_host_repair_store_with_json_prints_one_document(
    make_sim: SimFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, _host = make_sim()
    tp = max(sim.model.certs, key=lambda c: c.not_before).thumbprint
    code = _run(["host", "repair-store", "iis01", tp, "--yes", "--json", "-c", _config(tmp_path, sim.url)])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    assert doc["ok"]
    assert doc["details"]["after"] == "ok"


def test_host_inventory_lists_certificates(
    make_sim: SimFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, _host = make_sim()
    assert _run(["host", "inventory", "iis01", "-c", _config(tmp_path, sim.url)]) == 0
    out = capsys.readouterr().out
    assert "iis01: 2 certificate(s)" in out
    assert "missing_keyset" in out


def test_an_unknown_host_is_a_sentence_and_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _run(["host", "audit-tasks", "nope", "-c", _config(tmp_path, "http://127.0.0.1:1/wsman")])
    assert code == 3
    assert capsys.readouterr().err == f'No host named "nope" in {tmp_path / "certops.toml"} (known hosts: iis01).\n'


def test_a_failed_action_prints_a_sentence_not_a_traceback(
    make_sim: SimFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, _host = make_sim(faults=Faults(reject_all=True))
    code = _run(["host", "audit-tasks", "iis01", "-c", _config(tmp_path, sim.url)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith("iis01: the host refused the WinRM credentials")
    assert "Traceback" not in captured.err
    assert sim.password not in captured.err


def test_an_injected_thumbprint_on_the_command_line_is_refused_without_traffic(
    make_sim: SimFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, _host = make_sim()
    code = _run(["host", "repair-store", "iis01", "'; Remove-Item C:\\ -Recurse #", "-c", _config(tmp_path, sim.url)])
    assert code == 3  # the command line is wrong: refused before anything is asked or sent
    assert "40 hexadecimal characters" in capsys.readouterr().err
    assert sim.requests == []


def test_a_broken_config_is_reported_with_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["host", "diagnose", "iis01", "-c", str(tmp_path / "missing.toml")]) == 3
    assert "file not found" in capsys.readouterr().err
