"""add-post-renew-step installs Layer 3 as host_actions.layers builds it, and the report
configuration it reports with when the config has it, through pywinrm and the simulator."""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import json

import pytest

from bot.config import Host
from host_actions import actions
from host_actions.actions import layer_files, post_renew_step
from host_actions.errors import HostActionError
from host_actions.layers import layer_script
from host_actions.simulator import HostModel
from host_actions.simulator.scenarios import POST_RENEW, healthy_host, incident_host
from host_actions.target import EnvSecret
from tests.host_actions.conftest import SimFactory

RENEWAL = "mZ3Yk1fWbkW0yJbqv7NfVw"  # incident_host's
SHOP_RENEWAL = "shopRenewal01"  # healthy_host's, whose step is in place already
SECRET_ENV = "CERTOPS_TEST_REPORT_SECRET"
SECRET = "0d5c2b1a7e9f4d8c9f2c1e7d4b8a6f3e-report-secret"
URL = "https://certops.example.com/api/report"
FOLDER = "C:\\ProgramData\\certops"
LOCKED = "S-1-5-18:FullControl:Allow,S-1-5-32-544:FullControl:Allow"


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return SECRET


def reporting(host: Host) -> Host:
    return dataclasses.replace(host, report_url=URL, report_secret=EnvSecret(SECRET_ENV))


def _state(model: HostModel) -> str:
    return json.dumps(
        {"renewals": [r.text() for r in model.renewals], "files": model.files, "acls": model.file_acls},
        sort_keys=True,
    )


def test_the_step_installs_the_layer_3_script_under_its_usual_name(make_sim: SimFactory) -> None:
    sim, host = make_sim(incident_host())
    result = actions.add_post_renew_step(host, RENEWAL)
    assert result.ok, result.summary
    assert POST_RENEW.endswith("\\Scripts\\certops_post_renew.ps1")
    assert sim.model.files[POST_RENEW.lower()] == layer_script("post-renew")
    step = sim.model.renewals[0].data["InstallationPluginOptions"][1]
    assert (step["Script"], step["ScriptParameters"]) == (POST_RENEW, "-Thumbprint {CertThumbprint}")
    assert "param([Parameter(Mandatory = $true)][ValidatePattern('^[0-9A-Fa-f]{40}$')][string]$Thumbprint)" in (
        layer_script("post-renew")
    )


def test_the_action_no_longer_reads_the_old_certops_post_renew_script() -> None:
    source = inspect.getsource(post_renew_step)
    assert "script_text" not in source
    assert 'layer_script("post-renew")' in source


def test_without_report_config_the_step_is_installed_and_says_it_will_not_report(make_sim: SimFactory) -> None:
    sim, host = make_sim(incident_host())
    result = actions.add_post_renew_step(host, RENEWAL)
    assert result.ok, result.summary
    assert result.summary.endswith(
        " The step will not report until [bot] public_url and report_secret_env (or report_secret_file) for "
        "iis-sim are set; then run add-post-renew-step again."
    )
    assert result.details["reports"] is False
    assert not any(path.startswith(FOLDER.lower()) for path in sim.model.files)
    half = dataclasses.replace(host, report_url=URL)
    assert "until report_secret_env (or report_secret_file) for iis-sim are set" in (
        actions.add_post_renew_step(half, RENEWAL).summary
    )


def test_with_report_config_the_step_writes_report_json_and_report_key_locked(
    make_sim: SimFactory, secret: str
) -> None:
    sim, host = make_sim(incident_host())
    result = actions.add_post_renew_step(reporting(host), RENEWAL, now=dt.datetime(2026, 11, 28, 8, 40, tzinfo=dt.UTC))
    assert result.ok, result.summary
    assert json.loads(sim.model.files[f"{FOLDER}\\report.json".lower()]) == {"url": URL, "host": "iis-sim"}
    assert sim.model.files[f"{FOLDER}\\report.key".lower()] == secret
    for name in ("", "\\report.json", "\\report.key"):
        assert sim.model.file_acls[(FOLDER + name).lower()] == LOCKED
    assert f"Its reports go to {URL}: the folder: created (SYSTEM and Administrators only); report.json: written " in (
        result.summary
    )
    assert "report.key: written (the secret is not shown)" in result.summary
    assert result.details["backup"].endswith(".renewal.json.certops-20261128084000.bak")  # as before
    assert secret not in json.dumps(result.to_json())


def test_the_second_run_with_report_config_changes_nothing(make_sim: SimFactory, secret: str) -> None:
    sim, host = make_sim(incident_host())
    host = reporting(host)
    actions.add_post_renew_step(host, RENEWAL)
    before, ran = _state(sim.model), len(sim.scripts_run)
    again = actions.add_post_renew_step(host, RENEWAL)
    assert again.ok
    assert again.details["changed"] is False
    assert again.summary.endswith(f"nothing changed. Its reports go to {URL} (report.json and report.key unchanged).")
    assert sim.scripts_run[ran:] == ["winacme", "layer_state"]
    assert _state(sim.model) == before


def test_a_step_in_place_gets_only_the_report_config_it_lacks(make_sim: SimFactory, secret: str) -> None:
    model = healthy_host()
    model.files[POST_RENEW.lower()] = layer_script("post-renew")
    model.file_acls[POST_RENEW.lower()] = LOCKED
    sim, host = make_sim(model)
    renewal = sim.model.renewals[0].text()
    result = actions.add_post_renew_step(reporting(host), SHOP_RENEWAL)
    assert result.ok, result.summary
    assert result.summary.startswith(f"iis-sim: renewal {SHOP_RENEWAL} already runs {POST_RENEW} after the IIS step.")
    assert "report.key: written (the secret is not shown)" in result.summary
    assert sim.model.renewals[0].text() == renewal
    assert "add_post_renew_step" not in sim.scripts_run  # the renewal file is not written, no backup
    assert not [p for p in sim.model.files if p.endswith(".bak")]
    assert sim.model.files[f"{FOLDER}\\report.key".lower()] == secret


def test_an_older_post_renew_script_in_place_is_replaced_by_the_current_one(make_sim: SimFactory) -> None:
    model = healthy_host()  # its step runs an older script: "# certops-script: certops_post_renew"
    sim, host = make_sim(model)
    preview = actions.add_post_renew_step(host, SHOP_RENEWAL, what_if=True)
    assert preview.summary.startswith(f"Would write {POST_RENEW} (SYSTEM and Administrators full control")
    change = preview.details["changes"][0]
    assert (change["item"], change["outcome"], change["detail"]) == (POST_RENEW, "written", "its content differs")
    result = actions.add_post_renew_step(host, SHOP_RENEWAL)
    assert result.ok, result.summary
    assert sim.model.files[POST_RENEW.lower()] == layer_script("post-renew")
    steps = sim.model.renewals[0].data["InstallationPluginOptions"]
    assert [s.get("Script") for s in steps].count(POST_RENEW) == 1  # the step is not added twice


def test_what_if_with_report_config_changes_nothing_and_sends_no_secret(make_sim: SimFactory, secret: str) -> None:
    sim, host = make_sim(incident_host())
    before = _state(sim.model)
    result = actions.add_post_renew_step(reporting(host), RENEWAL, what_if=True)
    assert result.ok
    assert "report.key: would be written (the secret is not shown)" in result.summary
    assert "report.json: would be written (new)" in result.summary
    assert _state(sim.model) == before
    assert sim.scripts_run == ["winacme", "layer_state"]
    assert all(secret.encode() not in e.body for e in sim.wire)


def test_a_configured_but_unreadable_report_secret_stops_the_step_before_anything_is_sent(
    make_sim: SimFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    sim, host = make_sim(incident_host())
    with pytest.raises(HostActionError) as caught:
        actions.add_post_renew_step(reporting(host), RENEWAL)
    assert "the report secret is not available" in caught.value.message
    assert sim.requests == []


def test_the_step_still_refuses_while_wacs_runs_with_report_config_too(make_sim: SimFactory, secret: str) -> None:
    model = incident_host()
    model.wacs_running = True
    sim, host = make_sim(model)
    with pytest.raises(HostActionError) as caught:
        actions.add_post_renew_step(reporting(host), RENEWAL)
    assert "wacs.exe is running (process 4711)" in caught.value.message
    assert {"add_post_renew_step", "report_config"}.isdisjoint(sim.scripts_run)
    assert not any(path.startswith(FOLDER.lower()) for path in sim.model.files)


def test_after_the_step_a_renewal_that_breaks_the_key_link_is_repaired_by_the_layer_3_script(
    make_sim: SimFactory, secret: str
) -> None:
    sim, host = make_sim(incident_host())
    assert actions.add_post_renew_step(reporting(host), RENEWAL).ok
    sim.model.next_renewal_key_state = "missing_keyset"
    assert actions.renew(host, RENEWAL, force=True).ok
    newest = max(sim.model.certs, key=lambda c: c.not_before)
    assert newest.key_state == "ok"
    assert f"certutil -repairstore {newest.store} {newest.thumbprint}" in sim.model.log


def test_the_shared_acl_judgement_is_the_one_post_renew_step_uses() -> None:
    assert post_renew_step.SCRIPT_ACL == layer_files.LOCKED_SIDS
    assert layer_files.acl_locked({"protected": True, "rules": LOCKED.split(",")})
    assert not layer_files.acl_locked({"protected": False, "rules": LOCKED.split(",")})
    assert not layer_files.acl_locked({"protected": True, "rules": ["S-1-5-32-545:ReadAndExecute:Allow"]})
