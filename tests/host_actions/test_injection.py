"""Values that could reach PowerShell are refused in Python before any WinRM request."""

from __future__ import annotations

from dataclasses import replace

import pytest

from host_actions import actions
from host_actions.errors import HostActionError
from host_actions.simulator.contract import check
from tests.host_actions.conftest import SimFactory

INJECTED_THUMBPRINT = "'; Remove-Item C:\\ -Recurse #"
GOOD_TP = "A" * 40


def test_it_refuses_an_injected_thumbprint_without_any_traffic(make_sim: SimFactory) -> None:
    sim, host = make_sim()
    with pytest.raises(HostActionError) as caught:
        actions.repair_store(host, INJECTED_THUMBPRINT)
    assert caught.value.message == "A thumbprint is 40 hexadecimal characters; this value was refused."
    assert sim.requests == []


@pytest.mark.parametrize(
    ("call", "label"),
    [
        (lambda h: actions.rebind(h, "Default Web Site", INJECTED_THUMBPRINT), "rebind thumbprint"),
        (lambda h: actions.rebind(h, "x'; Stop-Computer #", GOOD_TP), "rebind site"),
        (lambda h: actions.rebind(h, "Site$(calc)", GOOD_TP), "rebind subexpression"),
        (lambda h: actions.verify_binding(h, "a`nb"), "verify-binding site"),
        (lambda h: actions.renew(h, "abc; del *"), "renew id"),
        (lambda h: actions.renew(h, "../../x"), "renew traversal"),
        (lambda h: actions.retire_task(h, "\\SSL-PostRenew'; Remove-Item C:\\ #"), "task quote"),
        (lambda h: actions.retire_task(h, "\\Microsoft\\Windows\\Defrag\\ScheduledDefrag"), "Windows task"),
        (lambda h: actions.retire_task(h, "SSL-PostRenew"), "relative task"),
        (lambda h: actions.add_post_renew_step(h, 'id"; calc'), "renewal id"),
        (lambda h: actions.repair_store(h, "A" * 39 + "G"), "non-hex"),
        (lambda h: actions.repair_store(h, "A" * 40 + "\n"), "trailing newline"),
    ],
)
def test_it_refuses_unsafe_values_without_any_traffic(make_sim: SimFactory, call: object, label: str) -> None:
    sim, host = make_sim()
    with pytest.raises(HostActionError) as caught:
        call(host)  # type: ignore[operator]
    assert caught.value.kind == "script_failed", label
    assert sim.requests == [], label


def test_a_wacs_path_that_could_break_out_is_refused_without_any_traffic(make_sim: SimFactory) -> None:
    sim, host = make_sim()
    with pytest.raises(HostActionError):
        actions.renew(replace(host, wacs_path='C:\\x\\wacs.exe" & calc & "'), None)
    assert sim.requests == []


def test_a_thumbprint_with_spaces_or_lower_case_is_accepted_in_windows_form() -> None:
    from host_actions import validate

    assert validate.thumbprint("90 da 9f 10 2d 09 1d e2 7a fc 09 2b 72 12 e9 41 18 d5 b7 b2") == (
        "90DA9F102D091DE27AFC092B7212E94118D5B7B2"
    )


def test_the_scripts_own_validation_would_refuse_the_same_values() -> None:
    assert check("repair_store", {"Store": "My", "Thumbprint": INJECTED_THUMBPRINT}) is not None
    assert check("repair_store", {"Store": "Root", "Thumbprint": GOOD_TP}) is not None
    assert check("rebind", {"Site": "x'; y", "Thumbprint": GOOD_TP, "Store": "My"}) is not None
    assert check("retire_task", {"TaskFolder": "\\", "TaskName": "a'b", "Date": "20260101"}) is not None
    assert check("renew", {"WacsPath": "C:\\w\\wacs.exe", "RenewalId": "a b"}) is not None
    assert check("repair_store", {"Store": "My", "Thumbprint": GOOD_TP}) is None
    assert check("repair_store", {"Store": "My", "Thumbprint": GOOD_TP, "Extra": 1}) is not None
    assert check("repair_store", {"Thumbprint": GOOD_TP}) is not None
