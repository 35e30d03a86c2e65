"""What win-acme 2.2 really writes: a failed Script step recorded as a success, DueDate as an
object stored only under ACME Renewal Info, and the console's four-letter log levels. Host-side
cases go through pywinrm against the simulator."""

from __future__ import annotations

import datetime as dt

import pytest

from host_actions import actions
from host_actions.actions import RELEVANT_WACS_LINE
from host_actions.diagnose import diagnose
from host_actions.inventory import inventory
from host_actions.layers import layer_script
from host_actions.simulator.scenarios import POST_RENEW, healthy_host
from tests.host_actions.conftest import SimFactory

# -- DueDate -------------------------------------------------------------------------------


def test_a_due_date_object_from_acme_renewal_info_makes_a_renewal_that_has_not_run_overdue(
    make_sim: SimFactory,
) -> None:
    model = healthy_host()
    model.due_date_style = "2.2.3"
    r = model.renewals[0]
    ari_due = model.now - dt.timedelta(days=10)
    r.data["History"] = [model.history_entry(True, model.certs[0].thumbprint, days_ago=20, ari_due=ari_due)]
    assert isinstance(r.data["History"][0]["OrderResults"][0]["DueDate"], dict)
    _sim, host = make_sim(model)
    [finding] = [f for f in diagnose(inventory(host), now=model.now) if f.code == "renewal_overdue"]
    assert abs(finding.evidence["due"] - ari_due) < dt.timedelta(seconds=1)


@pytest.mark.parametrize(
    ("renewal_days", "days_ago", "overdue"),
    [(None, 40, False), (None, 60, True), (30, 40, True), (90, 60, False)],
)
def test_without_a_stored_due_date_a_renewal_is_due_renewal_days_from_settings_json_after_its_last_success(
    make_sim: SimFactory, renewal_days: int | None, days_ago: int, overdue: bool
) -> None:
    model = healthy_host()
    model.due_date_style = "2.2.3"
    if renewal_days is not None:
        model.set_wacs_settings(renewal_days)
    r = model.renewals[0]
    r.data["History"] = [model.history_entry(True, model.certs[0].thumbprint, days_ago=days_ago)]
    assert "DueDate" not in r.data["History"][0]["OrderResults"][0]
    _sim, host = make_sim(model)
    codes = {f.code for f in diagnose(inventory(host), now=model.now)}
    assert ("renewal_overdue" in codes) is overdue


# -- a failing Script step -----------------------------------------------------------------


def test_a_failing_script_step_that_win_acme_records_as_success_is_post_renew_step_failed(
    make_sim: SimFactory,
) -> None:
    model = healthy_host()
    model.files[POST_RENEW.lower()] = layer_script("post-renew")
    model.next_script_exit = 1
    sim, host = make_sim(model)
    result = actions.renew(host, "shopRenewal01", force=True)
    assert result.ok  # wacs exits 0: win-acme does not treat it as fatal
    # read from the day's log file, whose levels are three letters
    assert any("[ERR]" in line and "Installation plugin Script" in line for line in result.details["log"])
    assert sim.model.renewals[0].data["History"][-1]["Success"] is True
    findings = diagnose(inventory(host), now=sim.model.now)
    codes = {f.code for f in findings}
    assert "renewal_failing" not in codes
    [finding] = [f for f in findings if f.code == "post_renew_step_failed"]
    assert sim.model.renewals[0].data["FriendlyName"] in finding.message
    assert "Installation plugin Script encountered an error" in finding.message
    assert finding.proposal is None
    assert finding.to_json()["code"] == "post_renew_step_failed"


def test_a_successful_renewal_without_error_messages_is_not_post_renew_step_failed(make_sim: SimFactory) -> None:
    model = healthy_host()
    model.files[POST_RENEW.lower()] = layer_script("post-renew")
    sim, host = make_sim(model)
    actions.renew(host, "shopRenewal01", force=True)
    assert "post_renew_step_failed" not in {f.code for f in diagnose(inventory(host), now=sim.model.now)}


# -- log levels ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        " [EROR] Renewal for [IIS] shop failed, will retry on next run",
        " [WARN] Certificate will expire soon",
        " [FATL] Unrecoverable error",
        "2024-01-01 10:00:00.000 +00:00 [ERR] Renewal failed",
        "2024-01-01 10:00:00.000 +00:00 [WRN] Warning",
        "2024-01-01 10:00:00.000 +00:00 [FTL] Fatal",
    ],
)
def test_error_warning_and_fatal_lines_of_the_console_and_the_log_file_reach_the_summary(line: str) -> None:
    assert RELEVANT_WACS_LINE.search(line)


def test_plain_info_lines_stay_out_of_the_summary() -> None:
    assert not RELEVANT_WACS_LINE.search(" [INFO] A simple Windows ACMEv2 client (WACS)")
