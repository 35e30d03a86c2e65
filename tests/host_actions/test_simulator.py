"""The simulator itself: it speaks WS-Man the way pywinrm expects and runs only our scripts."""

from __future__ import annotations

import base64
import json

import pytest
import requests
from winrm.protocol import Protocol

from host_actions.scripts import Part, bootstrap_command, encode_job
from host_actions.simulator import HostModel, WinRMSimulator
from host_actions.simulator.model import mint_certificate
from tests.host_actions.conftest import SimFactory


def _protocol(sim: WinRMSimulator) -> Protocol:
    return Protocol(
        sim.url,
        transport="basic",
        username=sim.username,
        password=sim.password,
        proxy=None,
        ca_trust_path=None,  # type: ignore[arg-type]  # avoids pywinrm's REQUESTS_CA_BUNDLE warning
    )


def test_pywinrm_runs_a_foreign_command_and_gets_cmd_exe_s_answer(make_sim: SimFactory) -> None:
    sim, _host = make_sim()
    p = _protocol(sim)
    shell = p.open_shell()
    command = p.run_command(shell, "ipconfig", ["/all"])
    out, err, code = p.get_command_output(shell, command)  # pywinrm's own loop, its RelatesTo asserts
    p.cleanup_command(shell, command)
    p.close_shell(shell)
    assert (out, code) == (b"", 1)
    assert b"is not recognized" in err
    assert sim.scripts_run == []


def test_a_script_that_is_not_ours_byte_for_byte_is_not_run(make_sim: SimFactory) -> None:
    sim, _host = make_sim()
    job = json.loads(base64.b64decode(encode_job([Part("certs")])))
    job["parts"][0]["script"] += "\nRemove-Item C:\\ -Recurse"
    p = _protocol(sim)
    shell = p.open_shell()
    command = p.run_command(shell, bootstrap_command(), console_mode_stdin=False)
    p.send_command_input(shell, command, base64.b64encode(json.dumps(job).encode()), end=True)
    out, _err, code = p.get_command_output(shell, command)
    p.cleanup_command(shell, command)
    p.close_shell(shell)
    [line] = out.decode().split()[1:]
    doc = json.loads(base64.b64decode(line))
    assert (code, doc["ok"], doc["error"]) == (0, False, "unknown script")
    assert sim.scripts_run == []


def test_a_request_without_credentials_gets_401_with_a_basic_challenge(make_sim: SimFactory) -> None:
    sim, _host = make_sim()
    answer = requests.post(sim.url, data=b"<x/>", timeout=5)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Basic realm="WSMAN"'


def test_an_unknown_shell_id_is_a_wsman_fault(make_sim: SimFactory) -> None:
    from winrm.exceptions import WSManFaultError

    sim, _host = make_sim()
    p = _protocol(sim)
    with pytest.raises(WSManFaultError) as caught:
        p.run_command("00000000-0000-0000-0000-000000000000", "x")
    assert caught.value.wsman_fault_code == 2150858843
    p.transport.close_session()


def test_minted_certificates_carry_their_names_and_dates() -> None:
    model = HostModel()
    cert = model.add_cert(["a.example", "b.example"], days_old=3, days_valid=30)
    assert cert.sans == ["a.example", "b.example"]
    assert cert.subject == "CN=a.example"
    assert (cert.not_after - cert.not_before).days == 30
    assert mint_certificate(["x.example"], model.now, 1).subject.rfc4514_string() == "CN=x.example"
