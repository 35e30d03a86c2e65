"""Every action end to end: pywinrm -> WS-Man simulator -> the host model, and back."""

from __future__ import annotations

import datetime as dt

import pytest

from host_actions import actions
from host_actions.errors import HostActionError
from host_actions.simulator import Faults, HostModel
from host_actions.simulator.scenarios import LEGACY_SCRIPT, healthy_host, incident_host
from tests.host_actions.conftest import SimFactory

RENEWAL = "mZ3Yk1fWbkW0yJbqv7NfVw"


def _newest(model: HostModel) -> str:
    return max(model.certs, key=lambda c: c.not_before).thumbprint


def test_diagnose_finds_the_incident_and_proposes_the_fixes(make_sim: SimFactory) -> None:
    sim, host = make_sim()
    _inv, findings, result = actions.diagnose_host(host)
    proposals = {f.code: f.proposal for f in findings}
    assert set(proposals) == {"newest_cert_key_unusable", "renewal_lacks_script_step", "legacy_task_missing_target"}
    assert proposals["newest_cert_key_unusable"].action == "repair-store"  # type: ignore[union-attr]
    assert proposals["newest_cert_key_unusable"].args == (_newest(sim.model),)  # type: ignore[union-attr]
    assert proposals["renewal_lacks_script_step"].args == (RENEWAL,)  # type: ignore[union-attr]
    assert proposals["legacy_task_missing_target"].args == ("\\SSL-PostRenew",)  # type: ignore[union-attr]
    assert not result.ok
    assert result.round_trips == 6
    assert sim.model.log == []  # diagnose changes nothing


def test_repair_store_rebuilds_the_key_link_and_reports_before_and_after(make_sim: SimFactory) -> None:
    sim, host = make_sim()
    tp = _newest(sim.model)
    result = actions.repair_store(host, tp.lower())
    assert result.ok
    assert (result.details["before"], result.details["after"]) == ("missing_keyset", "ok")
    assert result.details["certutil_ok"]
    assert result.details["certutil_view"] == "ok"
    assert result.summary == f"iis-sim: repaired the key link of {tp} in WebHosting (missing_keyset -> ok)."
    assert sim.requests.count("Create") == 1
    assert sim.requests.count("Command") == 2


def test_repair_store_says_so_when_the_key_is_really_gone(make_sim: SimFactory) -> None:
    model = incident_host()
    newest = max(model.certs, key=lambda c: c.not_before)
    newest.key_lost = True
    _sim, host = make_sim(model)
    result = actions.repair_store(host, newest.thumbprint)
    assert not result.ok
    assert result.details["certutil_hresult"] == "0x80090016"
    assert "still missing_keyset" in result.summary


def test_repair_store_of_a_certificate_not_on_the_host_is_a_script_failure(make_sim: SimFactory) -> None:
    _sim, host = make_sim()
    with pytest.raises(HostActionError) as caught:
        actions.repair_store(host, "B" * 40)
    assert caught.value.message == f"iis-sim: certificate {'B' * 40} is in neither My nor WebHosting."


def test_verify_binding_flags_a_binding_whose_key_is_unusable(make_sim: SimFactory) -> None:
    _sim, host = make_sim()
    result = actions.verify_binding(host, "Default Web Site")
    assert not result.ok
    assert {r["status"] for r in result.details["bindings"]} == {"key_unusable"}


def test_verify_binding_passes_on_a_healthy_host(make_sim: SimFactory) -> None:
    _sim, host = make_sim(healthy_host())
    result = actions.verify_binding(host)
    assert result.ok
    assert result.summary == "iis-sim: all 1 https binding(s) use the newest usable certificate."


def test_verify_binding_of_an_unknown_site_says_so(make_sim: SimFactory) -> None:
    _sim, host = make_sim()
    with pytest.raises(HostActionError) as caught:
        actions.verify_binding(host, "Nope")
    assert caught.value.message == (
        "iis-sim: IIS has no site named Nope; its sites are: Default Web Site. "
        "SITE is the IIS site name, as IIS Manager shows it."
    )


def test_rebind_points_iis_and_http_sys_at_the_given_certificate(make_sim: SimFactory) -> None:
    model = incident_host()
    old = min(model.certs, key=lambda c: c.not_before)
    sim, host = make_sim(model)
    result = actions.rebind(host, "Default Web Site", old.thumbprint)
    assert result.ok
    assert {b.thumbprint for b in sim.model.http_bindings} == {old.thumbprint}
    assert {r["bound"] for r in result.details["after"]} == {old.thumbprint}


def test_rebind_refuses_a_certificate_whose_key_is_unusable(make_sim: SimFactory) -> None:
    sim, host = make_sim()
    with pytest.raises(HostActionError) as caught:
        actions.rebind(host, "Default Web Site", _newest(sim.model))
    assert "its private key is missing_keyset" in caught.value.message
    assert sim.model.log == []


def test_renew_runs_wacs_and_reports_the_new_certificate(make_sim: SimFactory) -> None:
    model = healthy_host()
    sim, host = make_sim(model)
    result = actions.renew(host, "shopRenewal01", force=True)
    assert result.ok
    assert result.details["exit_code"] == 0
    [new] = result.details["new_certificates"]
    assert result.details["new_key_status"] == {new: "ok"}
    assert {b.thumbprint for b in sim.model.http_bindings} == {new}
    # the day's log file of the forced run: "Force renewing [IIS] ..." (RenewalExecutor)
    assert any("Force renewing" in line for line in result.details["log"])


def test_renew_replays_the_incident_when_no_post_renew_step_repairs_the_key(make_sim: SimFactory) -> None:
    model = incident_host()
    model.next_renewal_key_state = "missing_keyset"
    _sim, host = make_sim(model)
    result = actions.renew(host, RENEWAL, force=True)
    [new] = result.details["new_certificates"]
    assert result.details["new_key_status"] == {new: "missing_keyset"}
    assert "newest_cert_key_unusable" in {f["code"] for f in result.details["findings_after"]}


def test_after_add_post_renew_step_a_broken_renewal_heals_itself(make_sim: SimFactory) -> None:
    model = incident_host()
    model.next_renewal_key_state = "missing_keyset"
    _sim, host = make_sim(model)
    assert actions.add_post_renew_step(host, RENEWAL).ok
    result = actions.renew(host, RENEWAL, force=True)
    assert set(result.details["new_key_status"].values()) == {"ok"}


def test_a_failing_renewal_reports_wacs_exit_code_and_error_lines(make_sim: SimFactory) -> None:
    model = healthy_host()
    model.next_renewal_fails = True
    _sim, host = make_sim(model)
    result = actions.renew(host, "shopRenewal01", force=True)
    assert not result.ok
    assert result.details["exit_code"] == -1
    assert any("[ERR]" in line and "will retry" in line for line in result.details["log"])  # the log file's level
    assert "renewal_failing" in {f["code"] for f in result.details["findings_after"]}


def test_renew_of_an_id_the_host_did_not_report_is_refused_before_wacs_runs(make_sim: SimFactory) -> None:
    sim, host = make_sim()
    with pytest.raises(HostActionError) as caught:
        actions.renew(host, "unknownRenewal")
    assert caught.value.message == "iis-sim: win-acme has no renewal with id unknownRenewal."
    assert "renew" not in sim.scripts_run


def test_audit_tasks_lists_tasks_with_result_meaning_and_flags(make_sim: SimFactory) -> None:
    _sim, host = make_sim()
    result = actions.audit_tasks(host)
    tasks = {t["path"]: t for t in result.details["tasks"]}
    legacy = tasks["\\SSL-PostRenew"]
    assert legacy["last_result"] == "0x1"
    assert {f["code"] for f in legacy["flags"]} == {"failing", "missing_service"}
    assert tasks["\\win-acme renew (acme-v02.api.letsencrypt.org)"]["flags"] == []
    assert not result.ok


def test_audit_tasks_flags_missing_programs_scripts_and_users(make_sim: SimFactory) -> None:
    model = HostModel()
    model.add_task("Gone-Program", "C:\\nginx\\nginx.exe", "-s reload", last_result=0x80070002)
    model.add_task("Gone-Script", "powershell.exe", "-File C:\\old\\hook.ps1", last_result=0x41303)
    model.add_task("Gone-User", "powershell.exe", "-Command Get-Date", user="EXAMPLE\\olduser")
    _sim, host = make_sim(model)
    flags = {t["path"]: {f["code"] for f in t["flags"]} for t in actions.audit_tasks(host).details["tasks"]}
    assert flags == {
        "\\Gone-Program": {"failing", "missing_program"},
        "\\Gone-Script": {"missing_script"},
        "\\Gone-User": {"missing_user"},
    }


def test_retire_task_disables_it_and_renames_its_script(make_sim: SimFactory) -> None:
    sim, host = make_sim()
    result = actions.retire_task(host, "\\SSL-PostRenew", today=dt.date(2026, 11, 28))
    assert result.ok
    assert sim.model.task("\\SSL-PostRenew").state == "Disabled"  # type: ignore[union-attr]
    assert not sim.model.file_exists(LEGACY_SCRIPT)
    assert sim.model.file_exists(LEGACY_SCRIPT + ".deprecated.20261128")
    assert result.summary == (
        "iis-sim: \\SSL-PostRenew is disabled; renamed C:\\scripts\\ssl-post-renew.ps1.deprecated.20261128."
    )


def test_retire_task_refuses_a_task_without_flags_or_not_reported(make_sim: SimFactory) -> None:
    sim, host = make_sim()
    with pytest.raises(HostActionError) as unflagged:
        actions.retire_task(host, "\\win-acme renew (acme-v02.api.letsencrypt.org)")
    with pytest.raises(HostActionError) as unknown:
        actions.retire_task(host, "\\Nope")
    assert "has no problem flags" in unflagged.value.message
    assert unknown.value.message == "iis-sim: the task audit reported no task \\Nope."
    assert "retire_task" not in sim.scripts_run


def test_add_post_renew_step_backs_up_and_inserts_the_script_after_iis(make_sim: SimFactory) -> None:
    sim, host = make_sim()
    result = actions.add_post_renew_step(host, RENEWAL, now=dt.datetime(2026, 11, 28, 8, 40, tzinfo=dt.UTC))
    assert result.ok
    assert result.details["changed"]
    steps = sim.model.renewals[0].data["InstallationPluginOptions"]
    assert [s["Plugin"][:8] for s in steps] == ["ea6a5be3", "3bb22c70"]
    assert steps[1]["ScriptParameters"] == "-Thumbprint {CertThumbprint}"
    assert sim.model.file_exists(steps[1]["Script"])
    assert result.details["backup"].endswith(".renewal.json.certops-20261128084000.bak")
    assert any(line.startswith("+") and "3bb22c70" in line for line in result.details["diff"])


def test_add_post_renew_step_twice_changes_nothing_the_second_time(make_sim: SimFactory) -> None:
    sim, host = make_sim()
    actions.add_post_renew_step(host, RENEWAL)
    again = actions.add_post_renew_step(host, RENEWAL)
    assert again.ok
    assert not again.details["changed"]
    assert len(sim.model.renewals[0].data["InstallationPluginOptions"]) == 2


ALL_ACTIONS = [
    ("diagnose", lambda h: actions.diagnose_host(h)[2]),
    ("repair-store", lambda h: actions.repair_store(h, "A" * 40)),
    ("verify-binding", lambda h: actions.verify_binding(h)),
    ("rebind", lambda h: actions.rebind(h, "Default Web Site", "A" * 40)),
    ("renew", lambda h: actions.renew(h, RENEWAL)),
    ("audit-tasks", lambda h: actions.audit_tasks(h)),
    ("retire-task", lambda h: actions.retire_task(h, "\\SSL-PostRenew")),
    ("add-post-renew-step", lambda h: actions.add_post_renew_step(h, RENEWAL)),
]


@pytest.mark.parametrize(("name", "call"), ALL_ACTIONS)
def test_every_action_reports_rejected_credentials_as_auth_failed(
    make_sim: SimFactory, name: str, call: object
) -> None:
    _sim, host = make_sim(faults=Faults(reject_all=True))
    with pytest.raises(HostActionError) as caught:
        call(host)  # type: ignore[operator]
    assert caught.value.kind == "auth_failed", name


@pytest.mark.parametrize(("name", "call"), ALL_ACTIONS)
def test_every_action_reports_garbled_output_as_bad_output(make_sim: SimFactory, name: str, call: object) -> None:
    _sim, host = make_sim(faults=Faults(garbled=True))
    with pytest.raises(HostActionError) as caught:
        call(host)  # type: ignore[operator]
    assert caught.value.kind == "bad_output", name


@pytest.mark.parametrize(("name", "call"), ALL_ACTIONS)
def test_every_action_works_through_split_output_progress_noise_and_a_timed_out_receive(
    make_sim: SimFactory, name: str, call: object
) -> None:
    faults = Faults(split_stdout=3, clixml_progress=True, operation_timeout_once=True)
    _sim, host = make_sim(faults=faults)
    if name in ("repair-store", "rebind"):
        # "AAAA…" is not on the host: the host's own state refuses it, after a clean exchange
        with pytest.raises(HostActionError) as caught:
            call(host)  # type: ignore[operator]
        assert caught.value.kind == "script_failed"
    else:
        call(host)  # type: ignore[operator]


@pytest.mark.parametrize(("name", "call"), ALL_ACTIONS)
def test_every_action_stops_at_its_deadline(make_sim: SimFactory, name: str, call: object) -> None:
    _sim, host = make_sim(faults=Faults(script_seconds=30), timeout=1)
    with pytest.raises(HostActionError) as caught:
        call(host)  # type: ignore[operator]
    assert caught.value.kind == "timeout", name


@pytest.mark.parametrize(("name", "call"), ALL_ACTIONS)
@pytest.mark.parametrize("where", ["Create", "Command", "Receive"])
def test_every_action_reports_a_wsman_fault_as_a_sentence(
    make_sim: SimFactory, name: str, call: object, where: str
) -> None:
    sim, host = make_sim(faults=Faults(fault_on=where))
    with pytest.raises(HostActionError) as caught:
        call(host)  # type: ignore[operator]
    assert caught.value.message == "iis-sim: WinRM refused the request (fault 5): Access is denied.", name
    assert sim.shells == {}, name  # whatever failed, no shell is left open on the host


@pytest.mark.parametrize(("name", "call"), ALL_ACTIONS)
def test_every_action_reports_an_unreachable_host(make_sim: SimFactory, name: str, call: object) -> None:
    sim, host = make_sim()
    sim.stop()
    with pytest.raises(HostActionError) as caught:
        call(host)  # type: ignore[operator]
    assert caught.value.kind == "unreachable", name
