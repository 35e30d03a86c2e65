"""The model-driven TLS server: the wire follows the host, so repairs can be verified from outside."""

from __future__ import annotations

import hashlib
import socket
import ssl

import pytest

from host_actions import actions
from host_actions.simulator.scenarios import incident_host
from host_actions.simulator.tls import ModelTLSServer, server_name_of
from tests.host_actions.conftest import SimFactory


def _handshake(port: int, name: str) -> str:
    """The SHA-1 thumbprint served for this SNI name (verification off: the issuer is simulated)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return hashlib.sha1(der).hexdigest().upper()  # noqa: S324 - Windows thumbprints are SHA-1


def test_a_broken_key_link_resets_the_handshake_and_repair_store_fixes_it(make_sim: SimFactory) -> None:
    sim, host = make_sim(incident_host())
    newest = max(sim.model.certs, key=lambda c: c.not_before)
    with ModelTLSServer(sim.model) as tls:
        with pytest.raises((ConnectionResetError, ssl.SSLError)):
            _handshake(tls.port, "www.example.com")
        assert tls.handshakes[-1] == ("www.example.com", "reset")
        assert actions.repair_store(host, newest.thumbprint).ok
        assert _handshake(tls.port, "www.example.com") == newest.thumbprint


def test_the_binding_decides_which_certificate_is_served(make_sim: SimFactory) -> None:
    sim, host = make_sim(incident_host())
    old = min(sim.model.certs, key=lambda c: c.not_before)
    with ModelTLSServer(sim.model) as tls:
        actions.rebind(host, "Default Web Site", old.thumbprint)
        assert _handshake(tls.port, "example.com") == old.thumbprint


def test_it_reads_the_server_name_from_a_client_hello() -> None:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="www.example.com")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    assert server_name_of(outgoing.read()) == "www.example.com"
    assert server_name_of(b"GET / HTTP/1.1\r\n") is None
