"""The WinRM client against the simulator: the message flow, deadlines and every fault."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import replace

import pytest

from bot.config import Host, SecretRef
from host_actions.errors import HostActionError
from host_actions.inventory import inventory
from host_actions.scripts import COMMAND_LINE_LIMIT, Part, bootstrap_command
from host_actions.simulator import Faults
from host_actions.winrm_client import HostSession, arun, clixml_errors, run_in_thread
from tests.fakes.tls import Lab
from tests.host_actions.conftest import SimFactory, with_timeout


def test_an_inventory_costs_one_shell_one_command_and_six_round_trips(make_sim: SimFactory) -> None:
    sim, host = make_sim()
    inv = inventory(host)
    assert sim.requests == ["Create", "Command", "Send", "Receive", "Signal", "Delete"]
    assert sim.scripts_run == ["certs", "bindings", "winacme", "tasks"]
    assert len(inv.certificates) == 2
    assert sim.shells == {}  # the shell was deleted


def test_it_opens_the_shell_with_the_utf8_code_page(make_sim: SimFactory) -> None:
    sim, host = make_sim()
    with HostSession(host, "test") as session:
        shell = next(iter(sim.shells.values()))
        assert shell.codepage == "65001"
        session.run([Part("certs")])


def test_the_command_line_stays_far_below_the_cmd_exe_limit() -> None:
    assert len(bootstrap_command()) < COMMAND_LINE_LIMIT < 8191


def test_it_runs_several_commands_in_one_shell_and_cleans_up_each(make_sim: SimFactory) -> None:
    sim, host = make_sim()
    with HostSession(host, "test") as session:
        session.run([Part("certs")])
        session.run([Part("tasks")])
        assert session.stats.commands == 2
    assert sim.requests.count("Signal") == 2
    assert sim.requests[-1] == "Delete"


def test_a_command_slower_than_the_deadline_is_stopped_and_cleaned_up(make_sim: SimFactory) -> None:
    sim, host = make_sim(faults=Faults(script_seconds=30), timeout=1.5)
    started = time.monotonic()
    with pytest.raises(HostActionError) as caught:
        inventory(host)
    assert caught.value.kind == "timeout"
    assert time.monotonic() - started < 5
    assert "did not finish within 1.5 s" in caught.value.message
    assert sim.requests[-2:] == ["Signal", "Delete"]
    assert "Receive" in sim.requests


def test_a_receive_answered_with_the_operation_timeout_fault_is_asked_again(make_sim: SimFactory) -> None:
    sim, host = make_sim(faults=Faults(operation_timeout_once=True))
    inv = inventory(host)
    assert sim.requests.count("Receive") == 2
    assert inv.certificates


def test_a_stalled_http_answer_becomes_a_timeout(make_sim: SimFactory) -> None:
    _sim, host = make_sim(faults=Faults(hang_http=30), timeout=1)
    started = time.monotonic()
    with pytest.raises(HostActionError) as caught:
        inventory(host)
    assert caught.value.kind == "timeout"
    assert time.monotonic() - started < 4


def test_a_wrong_password_gives_auth_failed_in_plain_words(
    make_sim: SimFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, host = make_sim()
    monkeypatch.setenv("CERTOPS_TEST_WINRM_PASSWORD", "not-the-password")
    with pytest.raises(HostActionError) as caught:
        inventory(host)
    err = caught.value
    assert err.kind == "auth_failed"
    assert err.message == (
        "iis-sim: the host refused the WinRM credentials (wrong user name or password, "
        "or this account may not use WinRM)."
    )
    assert err.__cause__ is None
    assert err.__suppress_context__
    assert sim.requests == ["(rejected)"]


def test_credentials_never_appear_in_errors_reprs_or_logs(
    make_sim: SimFactory, caplog: pytest.LogCaptureFixture
) -> None:
    sim, host = make_sim(faults=Faults(reject_all=True))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HostActionError) as caught:
        inventory(host)
    session = HostSession(host, "x")
    texts = [str(caught.value), repr(caught.value), repr(session), repr(host), caplog.text]
    assert not any(sim.password in t for t in texts)


def test_a_wsman_fault_is_reported_with_its_code(make_sim: SimFactory) -> None:
    _sim, host = make_sim(faults=Faults(fault_on="Create"))
    with pytest.raises(HostActionError) as caught:
        inventory(host)
    assert caught.value.kind == "script_failed"
    assert caught.value.message == "iis-sim: WinRM refused the request (fault 5): Access is denied."


def test_a_fault_during_receive_still_deletes_the_shell(make_sim: SimFactory) -> None:
    sim, host = make_sim(faults=Faults(fault_on="Receive"))
    with pytest.raises(HostActionError):
        inventory(host)
    assert sim.requests[-2:] == ["Signal", "Delete"]


def test_garbled_output_is_bad_output(make_sim: SimFactory) -> None:
    _sim, host = make_sim(faults=Faults(garbled=True))
    with pytest.raises(HostActionError) as caught:
        inventory(host)
    assert caught.value.kind == "bad_output"


def test_stdout_split_over_several_receives_is_joined(make_sim: SimFactory) -> None:
    sim, host = make_sim(faults=Faults(split_stdout=5))
    inv = inventory(host)
    assert sim.requests.count("Receive") == 5
    assert len(inv.certificates) == 2


def test_clixml_progress_on_stderr_does_not_fail_the_action(make_sim: SimFactory) -> None:
    _sim, host = make_sim(faults=Faults(clixml_progress=True))
    assert inventory(host).certificates


def test_clixml_errors_keep_error_records_and_drop_progress() -> None:
    stderr = (
        b'#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
        b'<Obj S="progress" RefId="0"><MS><PR N="Record"><AV>Preparing modules for first use.</AV></PR></MS></Obj>'
        b'<S S="Error">Get-Item : Cannot find path_x000D__x000A_</S></Objs>'
    )
    assert clixml_errors(stderr) == "Get-Item : Cannot find path"


def test_an_unreachable_host_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTOPS_TEST_WINRM_PASSWORD", "pw")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    host = Host(
        "gone",
        f"http://127.0.0.1:{port}/wsman",
        transport="basic",
        username="u",
        password=SecretRef("hosts[0].password_env", env="CERTOPS_TEST_WINRM_PASSWORD"),
        allow_insecure_basic=True,
        timeout=5,
    )
    with pytest.raises(HostActionError) as caught:
        inventory(host)
    assert caught.value.kind == "unreachable"
    assert caught.value.message == f"gone: cannot connect to WinRM at 127.0.0.1:{port}."


def test_an_https_address_answered_in_plain_http_is_a_tls_mismatch(make_sim: SimFactory) -> None:
    _sim, host = make_sim()
    tls_host = replace(host, address=host.address.replace("http://", "https://"))
    with pytest.raises(HostActionError) as caught:
        inventory(tls_host)
    assert caught.value.kind == "tls_mismatch"


def test_basic_over_plain_http_is_refused_without_any_traffic(make_sim: SimFactory) -> None:
    sim, host = make_sim()
    with pytest.raises(HostActionError) as caught:
        inventory(replace(host, allow_insecure_basic=False))
    assert caught.value.kind == "auth_failed"
    assert sim.requests == []


def test_a_missing_password_variable_is_named_not_guessed(make_sim: SimFactory) -> None:
    sim, host = make_sim()
    host = replace(host, password=SecretRef("hosts[0].password_env", env="CERTOPS_NOT_SET_ANYWHERE"))
    with pytest.raises(HostActionError) as caught:
        inventory(host)
    assert caught.value.kind == "auth_failed"
    assert "CERTOPS_NOT_SET_ANYWHERE" in caught.value.message
    assert sim.requests == []


def test_actions_run_in_worker_threads_for_sync_and_async_callers(make_sim: SimFactory) -> None:
    _sim, host = make_sim()
    assert run_in_thread(inventory, host).result(timeout=30).certificates

    async def main() -> int:
        inv = await arun(inventory, host)
        return len(inv.certificates)

    assert asyncio.run(main()) == 2


def test_the_deadline_covers_the_whole_action_not_each_request(make_sim: SimFactory) -> None:
    sim, host = make_sim(faults=Faults(round_trip_delay=0.4), timeout=1)
    with pytest.raises(HostActionError) as caught:
        inventory(with_timeout(host, 1))
    assert caught.value.kind == "timeout"
    assert "Receive" not in sim.requests  # every request was fast; together they were not


def test_a_transport_whose_library_is_missing_is_named_without_traffic(
    make_sim: SimFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from winrm import transport

    sim, host = make_sim()
    monkeypatch.setattr(transport, "HAVE_KERBEROS", False)
    with pytest.raises(HostActionError) as caught:
        inventory(replace(host, transport="kerberos"))
    assert caught.value.kind == "auth_failed"
    assert caught.value.message == (
        "iis-sim: transport kerberos needs pykerberos, which is not installed (pip install 'pywinrm[kerberos]')."
    )
    assert sim.requests == []


def test_a_tls_listener_with_a_certificate_we_do_not_trust_is_tls_failed(make_sim: SimFactory, lab: Lab) -> None:
    # a real TLS listener whose certificate comes from a CA the host entry does not name
    _sim, host = make_sim()
    endpoint = lab.serve("iis01.example.test")
    tls_host = replace(host, address=f"https://127.0.0.1:{endpoint.port}/wsman", timeout=5)
    with pytest.raises(HostActionError) as caught:
        inventory(tls_host)
    assert caught.value.kind == "tls_failed"
