"""`certops host` obeys the rules chat does: a change is confirmed (or --yes), --what-if changes
nothing, and who ran what where, with the outcome, is in the audit log, even while the bot runs."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from bot.host_cli import register
from bot.store import open_store
from host_actions.simulator.scenarios import incident_host, multi_host_site
from tests.host_actions.conftest import PASSWORD_ENV, SimFactory


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="certops")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.handler(args))


def _config(tmp_path: Path, url: str, database: Path | None = None) -> str:
    path = tmp_path / "certops.toml"
    path.write_text(
        f'[bot]\ndatabase = "{database or tmp_path / "state.db"}"\n\n'
        f'[[hosts]]\nname = "iis01"\naddress = "{url}"\ntransport = "basic"\nusername = "certops"\n'
        f'password_env = "{PASSWORD_ENV}"\nallow_insecure_basic = true\ntimeout = "10s"\n',
        encoding="utf-8",
    )
    return str(path)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _newest(sim_model: object) -> str:
    certs = sim_model.certs
    return str(max(certs, key=lambda c: c.not_before).thumbprint)


def test_a_change_without_yes_and_without_a_terminal_is_refused_and_nothing_runs(
    make_sim: SimFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, _host = make_sim()
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code = _run(["host", "repair-store", "iis01", _newest(sim.model), "-c", _config(tmp_path, sim.url)])
    err = capsys.readouterr().err
    assert code == 3
    assert "changes iis01: confirm with --yes (or see what it would change with --what-if). Nothing was run." in err
    assert sim.requests == []
    assert not (tmp_path / "state.db").exists()


def test_a_change_confirmed_at_the_terminal_runs_and_is_audited_as_the_cli_user(
    make_sim: SimFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, _host = make_sim()
    tp = _newest(sim.model)
    monkeypatch.setattr("sys.stdin", _Terminal("yes\n"))
    monkeypatch.setenv("USER", "alice")
    monkeypatch.setenv("LOGNAME", "alice")
    code = _run(["host", "repair-store", "iis01", tp, "-c", _config(tmp_path, sim.url)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"certops host repair-store iis01 {tp} changes iis01. Run it? Type yes:" in captured.err
    store = open_store(tmp_path / "state.db")
    entries = [(e.actor, e.event, e.subject, e.outcome) for e in store.audit_log()]
    store.close()
    assert entries == [
        ("cli:alice", "approve", f"repair-store {tp} on iis01", "approved"),
        ("cli:alice", "run", f"repair-store {tp} on iis01", "ok"),
    ]


def test_a_change_not_confirmed_at_the_terminal_runs_nothing(
    make_sim: SimFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, _host = make_sim()
    monkeypatch.setattr("sys.stdin", _Terminal("n\n"))
    code = _run(["host", "repair-store", "iis01", _newest(sim.model), "-c", _config(tmp_path, sim.url)])
    assert code == 3
    assert "Not confirmed; nothing was run." in capsys.readouterr().err
    assert sim.requests == []


def test_the_cli_audits_its_run_even_while_certops_run_owns_the_database(
    make_sim: SimFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, _host = make_sim()
    owner = open_store(tmp_path / "state.db")  # holds the one-process lock, as certops run does
    try:
        code = _run(["host", "repair-store", "iis01", _newest(sim.model), "--yes", "-c", _config(tmp_path, sim.url)])
        assert code == 0, capsys.readouterr().err
        outcomes = [(e.event, e.outcome, e.detail) for e in owner.audit_log()]
    finally:
        owner.close()
    assert outcomes[0] == ("approve", "approved", "at the command line (--yes)")
    assert outcomes[1][:2] == ("run", "ok")
    assert "repaired the key link" in outcomes[1][2]


def test_an_audit_log_that_is_a_folder_stops_the_change_before_it_runs(
    make_sim: SimFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, _host = make_sim()
    folder = tmp_path / "state.db"
    folder.mkdir()
    code = _run(["host", "repair-store", "iis01", _newest(sim.model), "--yes", "-c", _config(tmp_path, sim.url)])
    err = capsys.readouterr().err
    assert code == 2
    assert "certops cannot write the audit log" in err
    assert "Traceback" not in err
    assert sim.requests == []


def test_what_if_says_what_rebind_would_change_and_changes_nothing(
    make_sim: SimFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = multi_host_site()
    renewed = next(c for c in model.certs if c.friendly_name == "www renewed")
    sim, _host = make_sim(model)
    before = [(h.endpoint, h.thumbprint) for h in sim.model.http_bindings]
    code = _run(["host", "rebind", "iis01", "Shop", renewed.thumbprint, "--what-if", "-c", _config(tmp_path, sim.url)])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(
        f"Would replace 1 https binding(s) of site Shop on iis01 with ones bound to {renewed.thumbprint}"
    )
    assert "*:443:www.example.net" in out
    assert "the certificate does not cover api.example.net" in out
    assert sim.model.log == []
    assert [(h.endpoint, h.thumbprint) for h in sim.model.http_bindings] == before
    assert not (tmp_path / "state.db").exists()  # nothing changed, so nothing to audit


def test_what_if_repair_store_reads_the_key_and_runs_no_certutil(
    make_sim: SimFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, _host = make_sim()
    cert = max(sim.model.certs, key=lambda c: c.not_before)
    tp = cert.thumbprint
    code = _run(["host", "repair-store", "iis01", tp, "--what-if", "-c", _config(tmp_path, sim.url)])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(f"Would run certutil -repairstore {cert.store} {tp} on iis01 (its key is now missing_keyset)")
    assert sim.model.log == []
    assert next(c for c in sim.model.certs if c.thumbprint == tp).key_state == "missing_keyset"


def test_a_rebind_can_name_one_binding_on_the_command_line(
    make_sim: SimFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = multi_host_site()
    model.add_cert(["www.example.net", "api.example.net"], days_old=0.5, friendly_name="both")
    both = next(c for c in model.certs if c.friendly_name == "both")
    api = next(c for c in model.certs if c.friendly_name == "api")
    sim, _host = make_sim(model)
    argv = ["host", "rebind", "iis01", "Shop", both.thumbprint, "--binding", "www.example.net:443", "--yes"]
    assert _run([*argv, "-c", _config(tmp_path, sim.url)]) == 0, capsys.readouterr().err
    served = {h.endpoint: h.thumbprint for h in sim.model.http_bindings}
    assert served["www.example.net:443"] == both.thumbprint
    assert served["api.example.net:443"] == api.thumbprint


def test_an_unknown_iis_site_lists_the_sites_the_host_has(
    make_sim: SimFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, _host = make_sim(multi_host_site())
    code = _run(["host", "verify-binding", "iis01", "shop-prod", "-c", _config(tmp_path, sim.url)])
    err = capsys.readouterr().err
    assert code == 2
    assert "IIS has no site named shop-prod; its sites are: Intranet, Legacy, Shop." in err
    assert "SITE is the IIS site name" in err


def test_help_says_site_is_the_iis_site_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _run(["host", "rebind", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "the IIS site name as IIS Manager shows it (not the [[sites]] name)" in out
    for option in ("--what-if", "--yes", "--binding BINDING", "--shared-socket"):
        assert option in out


def test_suggested_commands_are_quoted_so_a_shell_keeps_the_backslash(
    make_sim: SimFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, _host = make_sim(incident_host())
    _run(["host", "diagnose", "iis01", "-c", _config(tmp_path, sim.url)])
    out = capsys.readouterr().out
    assert "-> certops host retire-task iis01 '\\SSL-PostRenew'" in out


def test_diagnose_of_a_capture_judges_it_offline_as_the_live_host_was_judged(
    make_sim: SimFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, _host = make_sim(incident_host())
    config = _config(tmp_path, sim.url)
    capture = tmp_path / "iis01.json"
    assert _run(["host", "capture", "iis01", "-o", str(capture), "-c", config]) == 0
    assert capsys.readouterr().out.startswith(f"iis01: wrote {capture}.")
    live = _run(["host", "diagnose", "iis01", "--json", "-c", config])
    live_doc = json.loads(capsys.readouterr().out)
    sim.stop()  # offline from here on
    offline = _run(["host", "diagnose", "--capture", str(capture), "--json"])
    offline_doc = json.loads(capsys.readouterr().out)
    assert offline == live == 1
    assert offline_doc["details"]["findings"] == live_doc["details"]["findings"]
    assert offline_doc["summary"] == live_doc["summary"]


def test_diagnose_without_a_host_or_a_capture_says_what_to_give(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["host", "diagnose"]) == 3
    assert "give HOST, or --capture FILE" in capsys.readouterr().err


def test_diagnose_of_a_file_that_is_no_capture_is_refused_with_a_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "other"}', encoding="utf-8")
    assert _run(["host", "diagnose", "--capture", str(bad)]) == 3
    err = capsys.readouterr().err
    assert "is not a certops capture" in err
    assert "Traceback" not in err
