"""win-acme 2.2 runs as they really go: renewals in one folder per ACME server (and a moved
ConfigurationPath), wacs started as a one-shot SYSTEM task and followed to its end, an unknown id
that exits 0, a forced run that yields no new certificate, a renewal file edited while wacs runs,
and the what-if protocol of the changing actions. Host cases go through pywinrm to the simulator."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from host_actions import actions
from host_actions.errors import HostActionError, InvalidParameter
from host_actions.inventory import inventory
from host_actions.layers import layer_script
from host_actions.parsers import (
    base_uri_for,
    clean_uri,
    parse_winacme_renewals,
    wacs_event_lines,
    wacs_log_since,
)
from host_actions.registry import host_action
from host_actions.scripts import Part, script_text
from host_actions.simulator import HostModel
from host_actions.simulator.model import STAGING_BASE_URI
from host_actions.simulator.scenarios import POST_RENEW, healthy_host, incident_host
from host_actions.simulator.scripts import _end_run
from host_actions.winrm_client import HostSession
from tests.host_actions.conftest import SimFactory

RENEWAL = "shopRenewal01"
TASK = "\\certops\\certops renew shopRenewal01"
ZEROSSL = "https://acme.zerossl.com/v2/DV90"


def _state(model: HostModel) -> Any:
    """Everything a changing action could change, to show that a what-if changed none of it."""
    return json.dumps(
        {
            "certs": [c.thumbprint for c in model.certs],
            "renewals": [r.text() for r in model.renewals],
            "files": model.files,
            "acls": model.file_acls,
            "tasks": [(t.full_path, t.state, t.last_result) for t in model.tasks],
            "bindings": [(b.endpoint, b.thumbprint) for b in model.http_bindings],
            "log": model.log,
        },
        sort_keys=True,
        default=str,
    )


def _starts(model: HostModel) -> list[str]:
    return [line for line in model.log if line.startswith("start \\certops\\")]


def _with_staging_renewal(model: HostModel) -> HostModel:
    cert = model.certs[0]
    model.add_renewal("stagingRenewal1", ["shop.example.net"], 1, thumbprint=cert.thumbprint, base_uri=STAGING_BASE_URI)
    return model


# -- base-URI folders and ConfigurationPath -----------------------------------------------


def test_every_base_uri_folder_is_listed_and_each_renewal_carries_its_base_uri(make_sim: SimFactory) -> None:
    model = _with_staging_renewal(healthy_host())
    model.add_renewal("zeroRenewal01", ["shop.example.net"], 1, thumbprint=model.certs[0].thumbprint, base_uri=ZEROSSL)
    model.add_task("win-acme renew (acme.zerossl.comv2DV90)", model.wacs_path, f'--renew --baseuri "{ZEROSSL}"')
    _sim, host = make_sim(model)
    inv = inventory(host)
    with HostSession(host, "test") as session:
        [part] = session.run([Part("winacme", {"WacsPath": host.wacs_path})])
    assert isinstance(part.result, dict)
    assert part.result["base_folders"] == [
        "acme-staging-v02.api.letsencrypt.org",
        "acme-v02.api.letsencrypt.org",
        "acme.zerossl.comv2DV90",
    ]
    tagged = {r.id: (r.base_folder, r.base_uri) for r in parse_winacme_renewals(part.result, inv.tasks)}
    assert tagged == {
        RENEWAL: ("acme-v02.api.letsencrypt.org", "https://acme-v02.api.letsencrypt.org/"),
        "stagingRenewal1": ("acme-staging-v02.api.letsencrypt.org", STAGING_BASE_URI),
        "zeroRenewal01": ("acme.zerossl.comv2DV90", ZEROSSL),
    }


def test_a_renewal_in_the_staging_folder_is_renewed_with_the_staging_base_uri(make_sim: SimFactory) -> None:
    sim, host = make_sim(_with_staging_renewal(healthy_host()))
    result = actions.renew(host, "stagingRenewal1", force=True)
    assert result.ok, result.summary
    assert len(result.details["new_certificates"]) == 1
    [start] = _starts(sim.model)
    assert f'--baseuri "{STAGING_BASE_URI}" --id stagingRenewal1 --force' in start


def test_a_moved_configuration_path_is_where_renewals_logs_and_runs_are_found(make_sim: SimFactory) -> None:
    model = HostModel()
    model.configuration_path = "D:\\acme"
    cert = model.add_cert(["shop.example.net"], days_old=5)
    model.bind_site("Shop", "shop.example.net", cert)
    model.add_renewal(RENEWAL, ["shop.example.net"], 1, thumbprint=cert.thumbprint)
    # a leftover from before the move: wacs no longer reads it, so neither does certops
    model.add_renewal("oldRenewal01", ["shop.example.net"], 1, thumbprint=cert.thumbprint)
    model.renewals[-1].path = "C:\\ProgramData\\win-acme\\acme-v02.api.letsencrypt.org\\oldRenewal01.renewal.json"
    model.add_wacs_task()
    sim, host = make_sim(model)
    assert [r.id for r in inventory(host).renewals] == [RENEWAL]
    assert model.renewals[0].path.startswith("D:\\acme\\acme-v02.api.letsencrypt.org\\")
    result = actions.renew(host, RENEWAL, force=True)
    assert result.ok, result.summary
    assert result.details["log_missing"] == []
    assert any("Force renewing" in line for line in result.details["log"])
    assert sim.model.file_exists(sim.model.log_file("https://acme-v02.api.letsencrypt.org/"))


def test_a_base_uri_folder_certops_cannot_map_back_to_its_server_is_refused_before_wacs_runs(
    make_sim: SimFactory,
) -> None:
    model = healthy_host()
    model.add_renewal("zeroRenewal01", ["shop.example.net"], 1, thumbprint=model.certs[0].thumbprint, base_uri=ZEROSSL)
    sim, host = make_sim(model)  # no win-acme task names https://acme.zerossl.com/v2/DV90
    with pytest.raises(HostActionError) as caught:
        actions.renew(host, "zeroRenewal01", force=True)
    assert "acme.zerossl.comv2DV90" in caught.value.message
    assert "renew" not in sim.scripts_run


def test_renew_without_an_id_is_refused_when_renewals_live_under_several_acme_servers(make_sim: SimFactory) -> None:
    sim, host = make_sim(_with_staging_renewal(healthy_host()))
    with pytest.raises(InvalidParameter) as caught:
        actions.renew(host)
    assert "several ACME servers" in caught.value.message
    assert "renew" not in sim.scripts_run


def test_win_acme_s_folder_name_for_a_base_uri_is_its_clean_uri() -> None:
    assert clean_uri("https://acme-v02.api.letsencrypt.org/") == "acme-v02.api.letsencrypt.org"
    assert clean_uri("https://user:pw@acme.zerossl.com/v2/DV90") == "acme.zerossl.comv2DV90"
    assert base_uri_for("acme.zerossl.comv2DV90", []) is None  # a path cannot be read back
    assert base_uri_for("ca.internal.example", []) == "https://ca.internal.example/"


# -- what wacs really answers -------------------------------------------------------------


def test_wacs_with_an_unknown_id_exits_0_and_logs_no_renewals_found(make_sim: SimFactory) -> None:
    _sim, host = make_sim(healthy_host())
    params = {
        "WacsPath": host.wacs_path,
        "TaskName": "certops renew nosuchRenewal",
        "LogFolder": "C:\\ProgramData\\win-acme\\acme-v02.api.letsencrypt.org\\Log",
        "RenewalId": "nosuchRenewal",
    }
    with HostSession(host, "test") as session:
        [part] = session.run([Part("renew", params)])
    assert isinstance(part.result, dict)
    assert part.result["last_result"] == 0
    assert "No renewals found that match the filter" in part.result["log"][0]["text"]


def test_a_renewal_file_wacs_cannot_load_fails_the_renew_although_wacs_exits_0(make_sim: SimFactory) -> None:
    model = healthy_host()
    del model.renewals[0].data["ValidationPluginOptions"]  # RenewalStoreDisk skips the file
    _sim, host = make_sim(model)
    result = actions.renew(host, RENEWAL, force=True)
    assert not result.ok
    assert result.details["exit_code"] == 0
    assert "found no renewal shopRenewal01" in result.summary
    assert any("Unable to read renewal" in line for line in result.details["log"])


def test_a_forced_run_that_yields_no_new_certificate_is_a_failure(make_sim: SimFactory) -> None:
    model = healthy_host()
    model.next_renewal_no_certificate = True  # win-acme reuses its cached certificate
    _sim, host = make_sim(model)
    result = actions.renew(host, RENEWAL, force=True)
    assert not result.ok
    assert result.details["exit_code"] == 0
    assert result.details["new_certificates"] == []
    assert "produced no new certificate although it was forced" in result.summary
    assert any("[WRN] Using cache" in line for line in result.details["log"])


def test_an_unforced_run_with_nothing_due_succeeds_without_a_new_certificate(make_sim: SimFactory) -> None:
    _sim, host = make_sim(healthy_host())
    result = actions.renew(host, RENEWAL)
    assert result.ok, result.summary
    assert result.details["new_certificates"] == []
    assert "nothing was due" in result.summary


def test_force_without_a_renewal_id_is_refused_before_anything_is_sent(make_sim: SimFactory) -> None:
    sim, host = make_sim(healthy_host())
    with pytest.raises(InvalidParameter) as caught:
        actions.renew(host, None, force=True)
    assert caught.value.message.startswith("renew --force needs a renewal id")
    assert sim.requests == []


# -- the one-shot SYSTEM task ---------------------------------------------------------------


def test_renew_runs_wacs_as_a_one_shot_system_task_and_removes_it_once_read(make_sim: SimFactory) -> None:
    sim, host = make_sim(healthy_host())
    result = actions.renew(host, RENEWAL, force=True)
    assert result.ok, result.summary
    assert result.details["task"] == TASK
    assert _starts(sim.model) == [
        f'start {TASK}: --renew --baseuri "https://acme-v02.api.letsencrypt.org/" --id {RENEWAL} --force --verbose'
    ]
    assert sim.model.task(TASK) is None  # collected: the next renew starts afresh


def test_renew_polls_the_task_until_it_ends_within_its_deadline(make_sim: SimFactory) -> None:
    model = healthy_host()
    model.renew_task_polls = 3
    sim, host = make_sim(model)
    result = actions.renew(host, RENEWAL, force=True, poll_every=0.01)
    assert result.ok, result.summary
    assert sim.scripts_run.count("renew") == 4  # the start, then three reads
    assert len(result.details["new_certificates"]) == 1


def _left_running(make_sim: SimFactory) -> tuple[Any, Any, Any]:
    model = healthy_host()
    model.renew_task_polls = 10**6
    sim, host = make_sim(model, timeout=3.0)
    return sim, host, actions.renew(host, RENEWAL, force=True, poll_every=0.2)


def test_a_task_still_running_near_the_deadline_is_reported_with_its_log_so_far(make_sim: SimFactory) -> None:
    sim, _host, result = _left_running(make_sim)
    assert not result.ok
    assert result.details["running"] is True
    assert result.details["task"] == TASK
    assert any("A simple Windows ACMEv2 client" in line for line in result.details["log"])
    assert "still running" in result.summary
    assert f"run renew {RENEWAL} again" in result.summary
    assert sim.model.task(TASK).state == "Running"  # type: ignore[union-attr]


def test_a_second_renew_follows_the_running_task_instead_of_starting_another(make_sim: SimFactory) -> None:
    sim, host, _first = _left_running(make_sim)
    certs = len(sim.model.certs)
    sim.model.task(TASK).polls_left = 1  # type: ignore[union-attr]  # it ends on the next read
    result = actions.renew(host, RENEWAL, force=True, poll_every=0.01)
    assert result.ok, result.summary
    assert result.details["followed"] is True
    assert len(_starts(sim.model)) == 1
    assert len(sim.model.certs) == certs + 1
    assert len(result.details["new_certificates"]) == 1  # from the renewal's history since the start


def test_an_ended_run_nobody_read_is_the_answer_of_the_next_renew_not_a_second_run(make_sim: SimFactory) -> None:
    sim, host, _first = _left_running(make_sim)
    _end_run(sim.model, sim.model.task(TASK))  # type: ignore[arg-type]  # ended while nobody asked
    result = actions.renew(host, RENEWAL, force=True)
    assert result.ok, result.summary
    assert result.details["followed"] is True
    assert len(_starts(sim.model)) == 1
    assert sim.model.task(TASK) is None


def test_certops_s_renew_task_does_not_stand_in_for_a_missing_win_acme_task(make_sim: SimFactory) -> None:
    model = healthy_host()
    model.tasks = [t for t in model.tasks if not t.name.startswith("win-acme")]
    model.renew_task_polls = 10**6
    sim, host = make_sim(model, timeout=3.0)
    actions.renew(host, RENEWAL, force=True, poll_every=0.2)
    assert sim.model.task(TASK) is not None
    inv = inventory(host)
    assert inv.wacs_tasks == ()
    codes = {f.code for f in actions.diagnose_host(host)[1]}
    assert "wacs_task_missing_or_disabled" in codes


# -- add-post-renew-step while wacs runs ----------------------------------------------------

INCIDENT_RENEWAL = "mZ3Yk1fWbkW0yJbqv7NfVw"


def test_add_post_renew_step_refuses_while_a_wacs_process_runs(make_sim: SimFactory) -> None:
    model = incident_host()
    model.wacs_running = True
    sim, host = make_sim(model)
    before = _state(sim.model)
    with pytest.raises(HostActionError) as caught:
        actions.add_post_renew_step(host, INCIDENT_RENEWAL)
    assert "wacs.exe is running (process 4711)" in caught.value.message
    assert "would be lost" in caught.value.message
    assert "add_post_renew_step" not in sim.scripts_run
    assert _state(sim.model) == before


def test_add_post_renew_step_refuses_while_certops_s_renew_task_runs(make_sim: SimFactory) -> None:
    model = incident_host()
    model.renew_task_polls = 10**6
    sim, host = make_sim(model, timeout=3.0)
    assert actions.renew(host, INCIDENT_RENEWAL, force=True, poll_every=0.2).details["running"]
    with pytest.raises(HostActionError) as caught:
        actions.add_post_renew_step(host, INCIDENT_RENEWAL)
    assert f"\\certops\\certops renew {INCIDENT_RENEWAL} is running wacs.exe" in caught.value.message
    assert "add_post_renew_step" not in sim.scripts_run


def test_the_host_side_script_refuses_on_its_own_when_wacs_started_after_certops_looked(
    make_sim: SimFactory,
) -> None:
    model = incident_host()
    sim, host = make_sim(model)
    sim.model.wacs_running = True
    r = sim.model.renewals[0]
    params = {
        "RenewalPath": r.path,
        "ExpectedSha256": "0" * 64,
        "NewText": r.text(),
        "ScriptPath": POST_RENEW,
        "ScriptText": "# x",
        "Stamp": "20261128084000",
    }
    with HostSession(host, "test") as session:
        [part] = session.run([Part("add_post_renew_step", params)])
    assert not part.ok
    assert "wacs.exe is running" in str(part.error)


def test_the_post_renew_script_is_written_for_system_and_administrators_only(make_sim: SimFactory) -> None:
    sim, host = make_sim(incident_host())
    result = actions.add_post_renew_step(host, INCIDENT_RENEWAL)
    assert result.ok, result.summary
    assert result.details["script_acl"]["protected"] is True
    assert {r.split(":")[0] for r in result.details["script_acl"]["rules"]} == {"S-1-5-18", "S-1-5-32-544"}
    assert POST_RENEW.lower() in sim.model.file_acls


def test_the_renewal_file_is_written_through_a_temporary_file_and_file_replace() -> None:
    text = script_text("add_post_renew_step")
    assert "[IO.File]::Replace($temp, $RenewalPath, $backup)" in text
    assert "WriteAllText($RenewalPath" not in text  # never in place
    assert "SetAccessRuleProtection($true, $false)" in text
    assert "Get-Process -Name 'wacs'" in text


# -- what-if --------------------------------------------------------------------------------


def test_renew_what_if_names_the_command_and_the_task_and_changes_nothing(make_sim: SimFactory) -> None:
    sim, host = make_sim(healthy_host())
    before = _state(sim.model)
    result = actions.renew(host, RENEWAL, force=True, what_if=True)
    assert result.ok
    assert result.details["what_if"] is True
    assert result.summary == (
        f"Would start the scheduled task {TASK} as SYSTEM, running "
        '"C:\\Program Files\\win-acme\\wacs.exe" --renew --baseuri "https://acme-v02.api.letsencrypt.org/" '
        f"--id {RENEWAL} --force --verbose on iis-sim."
    )
    assert "renew" not in sim.scripts_run
    assert _state(sim.model) == before


def test_renew_what_if_still_refuses_what_a_real_run_would_refuse(make_sim: SimFactory) -> None:
    _sim, host = make_sim(healthy_host())
    with pytest.raises(InvalidParameter):
        actions.renew(host, None, force=True, what_if=True)
    with pytest.raises(HostActionError) as caught:
        actions.renew(host, "unknownRenewal", what_if=True)
    assert caught.value.message == "iis-sim: win-acme has no renewal with id unknownRenewal."


def test_renew_what_if_while_the_task_runs_says_it_would_follow_it(make_sim: SimFactory) -> None:
    sim, host, _first = _left_running(make_sim)
    result = actions.renew(host, RENEWAL, force=True, what_if=True)
    assert result.summary.startswith(f"Would follow {TASK}")
    assert result.details["follow"] is True
    assert len(_starts(sim.model)) == 1


def test_add_post_renew_step_what_if_shows_the_file_the_backup_and_the_diff_and_changes_nothing(
    make_sim: SimFactory,
) -> None:
    sim, host = make_sim(incident_host())
    before = _state(sim.model)
    now = dt.datetime(2026, 11, 28, 8, 40, tzinfo=dt.UTC)
    result = actions.add_post_renew_step(host, INCIDENT_RENEWAL, now=now, what_if=True)
    assert result.ok
    assert result.details["what_if"] is True
    path = sim.model.renewals[0].path
    assert result.details["backup"] == f"{path}.certops-20261128084000.bak"
    assert result.summary.startswith(f"Would write {POST_RENEW} (SYSTEM and Administrators full control")
    assert path in result.summary
    assert result.details["backup"] in result.summary
    assert any(line.startswith("+") and "3bb22c70" in line for line in result.details["diff"])
    assert "add_post_renew_step" not in sim.scripts_run
    assert _state(sim.model) == before


def test_add_post_renew_step_what_if_refuses_while_wacs_runs(make_sim: SimFactory) -> None:
    model = incident_host()
    model.wacs_running = True
    _sim, host = make_sim(model)
    with pytest.raises(HostActionError):
        actions.add_post_renew_step(host, INCIDENT_RENEWAL, what_if=True)


def test_the_registry_passes_what_if_to_renew(make_sim: SimFactory) -> None:
    sim, host = make_sim(healthy_host())
    result = host_action("renew").run(host, [RENEWAL, "--force"], what_if=True)
    assert result.details["what_if"] is True
    assert "renew" not in sim.scripts_run


# -- reading the run's log ------------------------------------------------------------------


def test_log_lines_written_before_the_run_began_are_left_out_and_stack_lines_stay_with_their_entry() -> None:
    text = (
        "2026-11-28 08:00:00.000 +01:00 [INF] an earlier run\r\n"
        "2026-11-28 08:40:01.500 +01:00 [ERR] Renewal for [IIS] shop failed, will retry on next run\r\n"
        "   at Some.Stack.Frame()\r\n"
    )
    since = dt.datetime(2026, 11, 28, 7, 40, tzinfo=dt.UTC)
    assert wacs_log_since([text], since) == [
        "2026-11-28 08:40:01.500 +01:00 [ERR] Renewal for [IIS] shop failed, will retry on next run",
        "   at Some.Stack.Frame()",
    ]


def test_win_acme_application_events_stand_in_for_a_missing_log_file_oldest_first() -> None:
    events = [
        {"at": "2026-11-28T08:41:00+00:00", "level": 2, "message": "Renewal for [IIS] shop failed"},
        {"at": "2026-11-28T08:40:00+00:00", "level": 4, "message": "Force renewing [IIS] shop"},
        {"at": "2026-11-28T07:00:00+00:00", "level": 3, "message": "older"},
    ]
    since = dt.datetime(2026, 11, 28, 8, 0, tzinfo=dt.UTC)
    assert wacs_event_lines(events, since) == [
        "2026-11-28T08:40:00+00:00 [INF] Force renewing [IIS] shop",
        "2026-11-28T08:41:00+00:00 [ERR] Renewal for [IIS] shop failed",
    ]


def test_a_post_renew_script_already_in_place_is_left_alone_by_what_if_too(make_sim: SimFactory) -> None:
    model = healthy_host()
    model.files[POST_RENEW.lower()] = layer_script("post-renew")
    model.file_acls[POST_RENEW.lower()] = "S-1-5-18:FullControl:Allow,S-1-5-32-544:FullControl:Allow"
    _sim, host = make_sim(model)
    result = actions.add_post_renew_step(host, RENEWAL, what_if=True)
    assert result.ok
    assert not result.details["changed"]
    assert "already runs" in result.summary
