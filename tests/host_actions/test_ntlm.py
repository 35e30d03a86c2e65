"""NTLM with WinRM message encryption, certops's default transport, end to end through pywinrm."""

from __future__ import annotations

import base64
import os
import stat
from dataclasses import replace
from types import SimpleNamespace

import pytest
import requests
import spnego
from requests_ntlm.requests_ntlm import ShimSessionSecurity
from winrm.encryption import Encryption
from winrm.exceptions import WinRMTransportError
from winrm.protocol import Protocol

from host_actions import actions
from host_actions.errors import HostActionError
from host_actions.inventory import inventory
from host_actions.scripts import bootstrap_command
from host_actions.simulator import Faults, HostModel, WinRMSimulator
from host_actions.simulator.ntlm import (
    ENCRYPTED_CONTENT_TYPE,
    ConnectionAuth,
    NTLMAcceptor,
    SealError,
    Step,
    seal,
    unseal,
)
from tests.host_actions.conftest import PASSWORD_ENV, SimFactory

REFUSED = (
    "iis-sim: the host refused the WinRM credentials (wrong user name or password, or this account may not use WinRM)."
)
ACTIONS = ["Create", "Command", "Send", "Receive", "Signal", "Delete"]


def _newest(model: HostModel) -> str:
    return max(model.certs, key=lambda c: c.not_before).thumbprint


def _after_handshake(sim: WinRMSimulator) -> list[bytes]:
    return [x.body for x in sim.wire if x.body]


def test_the_simulator_hands_out_an_ntlm_host_without_insecure_basic(make_sim: SimFactory) -> None:
    _sim, host = make_sim(auth="ntlm")
    assert host.transport == "ntlm"
    assert host.address.startswith("http://127.0.0.1:")
    assert not host.allow_insecure_basic


def test_an_inventory_runs_end_to_end_over_ntlm_with_message_encryption(make_sim: SimFactory) -> None:
    sim, host = make_sim(auth="ntlm")
    inv = inventory(host)
    assert len(inv.certificates) == 2
    assert sim.requests == ACTIONS
    assert sim.scripts_run == ["certs", "bindings", "winacme", "tasks"]
    assert sim.shells == {}
    # pywinrm's empty POST, then NTLM Negotiate -> Challenge and Authenticate on the same connection
    handshake = [(x.auth_scheme, x.body, x.status) for x in sim.wire[:3]]
    assert handshake == [(None, b"", 401), ("Negotiate", b"", 401), ("Negotiate", b"", 200)]
    assert all(x.auth_scheme is None for x in sim.wire[3:])  # the connection stays authenticated


def test_repair_store_runs_end_to_end_over_ntlm_and_repairs_the_key_link(make_sim: SimFactory) -> None:
    sim, host = make_sim(auth="ntlm")
    tp = _newest(sim.model)
    result = actions.repair_store(host, tp)
    assert result.ok
    assert (result.details["before"], result.details["after"]) == ("missing_keyset", "ok")
    assert result.summary == f"iis-sim: repaired the key link of {tp} in WebHosting (missing_keyset -> ok)."
    assert sim.requests.count("Command") == 2
    assert inventory(host).certificates  # and a second session on a fresh connection authenticates again


def test_a_wrong_password_over_ntlm_gives_auth_failed_in_a_plain_sentence(
    make_sim: SimFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, host = make_sim(auth="ntlm")
    monkeypatch.setenv(PASSWORD_ENV, "not-the-password")
    with pytest.raises(HostActionError) as caught:
        inventory(host)
    err = caught.value
    assert err.kind == "auth_failed"
    assert err.message == REFUSED
    assert err.__cause__ is None
    assert err.__suppress_context__
    assert "not-the-password" not in str(err) + repr(err)
    assert sim.password not in str(err) + repr(err)
    assert sim.requests == ["(rejected)"]  # nothing reached WS-Man
    assert sim.shells == {}


def test_an_unknown_user_over_ntlm_gives_auth_failed(make_sim: SimFactory) -> None:
    sim, host = make_sim(auth="ntlm")
    host = replace(host, username="someone-else")
    with pytest.raises(HostActionError) as caught:
        inventory(host)
    assert (caught.value.kind, caught.value.message) == ("auth_failed", REFUSED)
    assert sim.requests == ["(rejected)"]


def test_a_domain_account_authenticates_over_ntlm(monkeypatch: pytest.MonkeyPatch) -> None:
    with WinRMSimulator(username="CONTOSO\\svc-certops", auth="ntlm") as sim:
        monkeypatch.setenv(PASSWORD_ENV, sim.password)
        inventory(sim.host_config(password_env=PASSWORD_ENV))
        assert sim.requests == ACTIONS


def test_every_request_and_answer_after_the_handshake_is_encrypted_on_the_wire(make_sim: SimFactory) -> None:
    sim, host = make_sim(auth="ntlm")
    inventory(host)
    exchanges = [x for x in sim.wire if x.body]
    assert len(exchanges) == len(ACTIONS)
    for x in exchanges:
        assert x.content_type.startswith("multipart/encrypted;")
        assert 'protocol="application/HTTP-SPNEGO-session-encrypted"' in x.content_type
        assert x.answer_content_type == ENCRYPTED_CONTENT_TYPE
        assert b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=" in x.body
    # none of the SOAP, the command line, the job or the answers' streams is readable on the wire
    plaintext = [
        b"Envelope",
        b"schemas.xmlsoap.org",
        b"wsman",
        b"ShellId",
        bootstrap_command().encode(),
        b"stdout",
        b"CommandState",
    ]
    for x in exchanges:
        for text in plaintext:
            assert text not in x.body
            assert text not in x.answer


def test_basic_over_http_still_sends_soap_in_clear(make_sim: SimFactory) -> None:
    sim, host = make_sim()
    inventory(host)
    assert all(x.auth_scheme == "Basic" for x in sim.wire)
    assert all(b"Envelope" in x.body and b"Envelope" in x.answer for x in sim.wire)


def test_the_host_refuses_soap_in_clear_on_an_ntlm_connection(make_sim: SimFactory) -> None:
    sim, _host = make_sim(auth="ntlm")
    protocol = Protocol(
        sim.url,
        transport="ntlm",
        username=sim.username,
        password=sim.password,
        message_encryption="never",
        proxy=None,
        ca_trust_path=None,  # type: ignore[arg-type]  # avoids pywinrm's REQUESTS_CA_BUNDLE warning
    )
    with pytest.raises(WinRMTransportError) as caught:
        protocol.open_shell()
    protocol.transport.close_session()
    assert caught.value.code == 400
    assert sim.requests == []  # authenticated, but the clear SOAP was never acted on


@pytest.mark.parametrize(
    ("faults", "kind", "message"),
    [
        (Faults(reject_all=True), "auth_failed", REFUSED),
        (
            Faults(fault_on="Receive"),
            "script_failed",
            "iis-sim: WinRM refused the request (fault 5): Access is denied.",
        ),
        (Faults(fault_on="Create"), "script_failed", "iis-sim: WinRM refused the request (fault 5): Access is denied."),
    ],
)
def test_faults_over_ntlm_become_the_same_sentences_as_over_basic(
    make_sim: SimFactory, faults: Faults, kind: str, message: str
) -> None:
    sim, host = make_sim(auth="ntlm", faults=faults)
    with pytest.raises(HostActionError) as caught:
        inventory(host)
    assert (caught.value.kind, caught.value.message) == (kind, message)
    assert sim.shells == {}  # an encrypted fault is decrypted and the shell still deleted


def test_split_output_progress_noise_and_a_timed_out_receive_work_over_ntlm(make_sim: SimFactory) -> None:
    faults = Faults(split_stdout=3, clixml_progress=True, operation_timeout_once=True)
    sim, host = make_sim(auth="ntlm", faults=faults)
    inv = inventory(host)
    assert inv.certificates
    assert sim.requests.count("Receive") == 4


def test_a_command_slower_than_the_deadline_is_stopped_and_cleaned_up_over_ntlm(make_sim: SimFactory) -> None:
    sim, host = make_sim(auth="ntlm", faults=Faults(script_seconds=30), timeout=1.5)
    with pytest.raises(HostActionError) as caught:
        inventory(host)
    assert caught.value.kind == "timeout"
    assert sim.requests[-2:] == ["Signal", "Delete"]
    assert sim.shells == {}


def test_a_stalled_http_answer_over_ntlm_becomes_a_timeout(make_sim: SimFactory) -> None:
    sim, host = make_sim(auth="ntlm", faults=Faults(hang_http=30), timeout=1)
    with pytest.raises(HostActionError) as caught:
        inventory(host)
    assert caught.value.kind == "timeout"
    # The cleanup goes out on a new connection: requests_ntlm authenticates it afresh but resends
    # the Signal sealed with the old connection's keys, so the host cannot read it (HTTP 400), nor
    # the Delete after it. The shell is left to the host's idle timeout; pywinrm has no way to
    # re-seal a request after a reconnect, so a real host would see the same (not verified).
    assert [x.status for x in sim.wire[-4:]] == [401, 401, 400, 400]


def test_the_ntlm_user_file_variable_never_leaks_out_of_the_simulator(
    make_sim: SimFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NTLM_USER_FILE", raising=False)
    _sim, host = make_sim(auth="ntlm")
    inventory(host)
    assert "NTLM_USER_FILE" not in os.environ
    monkeypatch.setenv("NTLM_USER_FILE", "/somebody/elses/file")
    inventory(host)
    assert os.environ["NTLM_USER_FILE"] == "/somebody/elses/file"


def test_the_account_file_is_private_and_removed_on_close() -> None:
    acceptor = NTLMAcceptor("certops", "pw")
    try:
        assert stat.S_IMODE(os.stat(acceptor.path).st_mode) & 0o077 == 0
    finally:
        acceptor.close()
    assert not os.path.exists(acceptor.path)


@pytest.mark.parametrize("password", ["pass:word", "two\nlines"])
def test_a_password_the_account_file_cannot_hold_is_refused_up_front(password: str) -> None:
    with pytest.raises(ValueError, match="without ':' or line breaks"):
        NTLMAcceptor("certops", password)


def _handshake(acceptor: NTLMAcceptor, password: str) -> tuple[spnego.ContextProxy, ConnectionAuth, Step]:
    """Drive the acceptor the way requests_ntlm does: anonymous, Negotiate, Authenticate."""
    client = spnego.client("certops", password, protocol="ntlm", options=spnego.NegotiateOptions.use_ntlm)
    conn = ConnectionAuth()
    assert acceptor.step(conn, None) == Step(401, "Negotiate")
    challenge = acceptor.step(conn, "Negotiate " + base64.b64encode(client.step() or b"").decode())
    assert challenge.status == 401
    assert challenge.www_authenticate is not None
    token = base64.b64decode(challenge.www_authenticate.split(" ", 1)[1])
    return client, conn, acceptor.step(conn, "Negotiate " + base64.b64encode(client.step(token) or b"").decode())


def _sealed_pair() -> tuple[Encryption, spnego.ContextProxy]:
    """pywinrm's Encryption on a client context, and the simulator's context for the same handshake."""
    acceptor = NTLMAcceptor("certops", "pw")
    try:
        client, conn, done = _handshake(acceptor, "pw")
    finally:
        acceptor.close()
    assert done == Step(200)
    assert conn.authenticated
    assert conn.context is not None
    session = SimpleNamespace(auth=SimpleNamespace(session_security=ShimSessionSecurity(client)))
    return Encryption(session, "ntlm"), conn.context  # type: ignore[arg-type]


def _request_body(encryption: Encryption, soap: bytes) -> bytes:
    prepared = encryption.prepare_encrypted_request(requests.Session(), "http://127.0.0.1/wsman", soap)
    assert isinstance(prepared.body, bytes)
    return prepared.body


def test_sealing_round_trips_with_pywinrm_s_own_encryption_both_ways() -> None:
    encryption, server = _sealed_pair()
    for n in range(3):  # the RC4 streams and sequence numbers stay in step message after message
        assert (
            unseal(server, _request_body(encryption, b"<s:Envelope>%d</s:Envelope>" % n))
            == b"<s:Envelope>%d</s:Envelope>" % n
        )
        response = SimpleNamespace(
            headers={"Content-Type": ENCRYPTED_CONTENT_TYPE},
            content=seal(server, b"<s:Envelope>answer %d</s:Envelope>" % n),
            request=SimpleNamespace(url="http://127.0.0.1/wsman"),
        )
        assert encryption.parse_encrypted_response(response) == b"<s:Envelope>answer %d</s:Envelope>" % n  # type: ignore[arg-type]


# "<x/>" sealed is the 4 bytes before the 24-byte closing boundary; its 16-byte signature precedes it
@pytest.mark.parametrize("offset", [-26, -30], ids=["sealed-soap", "signature"])
def test_a_request_with_a_flipped_byte_is_refused(offset: int) -> None:
    encryption, server = _sealed_pair()
    tampered = bytearray(_request_body(encryption, b"<x/>"))
    tampered[offset] ^= 0x01
    with pytest.raises(SealError):
        unseal(server, bytes(tampered))


def test_an_authenticate_message_from_the_wrong_password_is_refused() -> None:
    acceptor = NTLMAcceptor("certops", "pw")
    try:
        _client, conn, done = _handshake(acceptor, "not-pw")
    finally:
        acceptor.close()
    assert done == Step(401, "Negotiate", refused=True)
    assert not conn.authenticated
    assert conn.context is None
