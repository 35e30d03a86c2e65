"""One loopback server per failure the probe must name, each checked by its problem code."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket

import pytest
from cryptography.hazmat.primitives import hashes

from bot.probe import PROBLEM_CODES, Severity, StaticResolver, Status, probe
from bot.probe.model import ProbeTarget
from tests.fakes.tls import Behaviour, Endpoint, Lab, MiniCA
from tests.probe.helpers import HOST, codes, run


def test_a_healthy_site_is_ok_with_its_certificate_read_off_the_wire(lab: Lab) -> None:
    endpoint = lab.serve(HOST, days_left=60)
    result = run(lab, endpoint)

    assert result.status is Status.OK, result.problems
    assert result.problems == ()
    assert result.address == "127.0.0.1"
    cert = result.certificate
    assert cert is not None
    assert cert.sha1 == endpoint.leaf.cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303
    assert cert.sha256 == endpoint.leaf.cert.fingerprint(hashes.SHA256()).hex().upper()
    assert len(cert.sha1) == 40
    assert cert.sha1 == cert.sha1.upper()
    assert cert.sans == (HOST,)
    assert cert.days_left in (59, 60)
    assert cert.key_type == "EC secp256r1"
    assert result.tls is not None
    assert result.tls.version.startswith("TLSv1.")
    assert result.http is not None
    assert (result.http.status, result.http.method) == (200, "HEAD")


def test_a_reset_in_the_middle_of_the_handshake_is_tls_handshake_reset(lab: Lab) -> None:
    result = run(lab, lab.serve(behaviour=Behaviour.RESET_IN_HANDSHAKE))
    assert codes(result) == ["tls_handshake_reset"]
    assert "RST" in result.problems[0].message
    assert result.status is Status.CRITICAL
    assert result.certificate is None


def test_a_close_during_the_handshake_is_also_tls_handshake_reset(lab: Lab) -> None:
    result = run(lab, lab.serve(behaviour=Behaviour.CLOSE_IN_HANDSHAKE))
    assert codes(result) == ["tls_handshake_reset"]
    assert "closed" in result.problems[0].message


def test_a_server_that_accepts_and_stays_silent_is_tls_handshake_timeout(lab: Lab) -> None:
    result = run(lab, lab.serve(behaviour=Behaviour.SILENT), timeout=0.5)
    assert codes(result) == ["tls_handshake_timeout"]


def test_plain_http_on_the_tls_port_is_tls_protocol_error(lab: Lab) -> None:
    result = run(lab, lab.serve(behaviour=Behaviour.PLAIN_HTTP))
    assert codes(result) == ["tls_protocol_error"]
    assert "WRONG_VERSION_NUMBER" in result.problems[0].message


def test_a_handshake_refused_with_an_alert_names_the_alert(lab: Lab) -> None:
    result = run(lab, lab.serve(behaviour=Behaviour.ALERT))
    assert codes(result) == ["tls_alert"]
    assert "handshake_failure" in result.problems[0].message


def test_an_expired_certificate_is_cert_expired_and_still_read(lab: Lab) -> None:
    result = run(lab, lab.serve(days_left=-3))
    assert codes(result) == ["cert_expired"]
    assert result.certificate is not None
    assert result.certificate.days_left < 0
    assert "expired on" in result.problems[0].message


def test_a_certificate_not_yet_valid_is_cert_not_yet_valid(lab: Lab) -> None:
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    leaf = lab.ca.issue(HOST, not_before=start, not_after=start + dt.timedelta(days=90))
    result = run(lab, lab.servers.add(Endpoint(leaf)))
    assert codes(result) == ["cert_not_yet_valid"]


def test_a_certificate_for_another_name_is_cert_hostname_mismatch(lab: Lab) -> None:
    result = run(lab, lab.serve("shop.example.test", "example.test"))
    assert codes(result) == ["cert_hostname_mismatch"]
    assert "shop.example.test" in result.problems[0].message
    assert result.certificate is not None


def test_a_wildcard_certificate_covers_one_label_only(lab: Lab) -> None:
    endpoint = lab.serve("*.example.test")
    assert codes(run(lab, endpoint)) == []
    assert codes(run(lab, endpoint, hostname="a.b.example.test")) == ["cert_hostname_mismatch"]


def test_a_certificate_from_an_unknown_ca_is_cert_untrusted(lab: Lab) -> None:
    stranger = MiniCA("stranger root")
    result = run(lab, lab.servers.add(Endpoint(stranger.issue(HOST))))
    assert codes(result) == ["cert_untrusted"]
    assert "unknown CA" in result.problems[0].message
    assert result.certificate is not None
    assert "stranger root" in result.certificate.issuer


def test_a_self_signed_certificate_is_cert_untrusted_and_says_so(lab: Lab) -> None:
    self_signed = MiniCA(HOST).issue(HOST)
    result = run(lab, lab.servers.add(Endpoint(self_signed)))
    assert codes(result) == ["cert_untrusted"]
    assert "self-signed" in result.problems[0].message


def test_a_missing_intermediate_is_cert_untrusted_and_says_so(lab: Lab) -> None:
    intermediate = lab.ca.intermediate()
    with_chain = lab.servers.add(Endpoint(intermediate.issue(HOST)))
    without_chain = lab.servers.add(Endpoint(intermediate.issue(HOST, include_chain=False)))

    assert codes(run(lab, with_chain)) == []
    result = run(lab, without_chain)
    assert codes(result) == ["cert_untrusted"]
    assert "intermediate" in result.problems[0].message
    assert result.certificate is not None
    assert result.certificate.chain_length == 1


def test_expiry_inside_warn_days_is_a_warning_and_inside_crit_days_critical(lab: Lab) -> None:
    warn = run(lab, lab.serve(days_left=15))
    crit = run(lab, lab.serve(days_left=3.5))
    assert [(p.code, p.severity) for p in warn.problems] == [("cert_expiring", Severity.WARNING)]
    assert [(p.code, p.severity) for p in crit.problems] == [("cert_expiring", Severity.CRITICAL)]
    assert warn.status is Status.WARNING
    assert crit.status is Status.CRITICAL
    assert codes(run(lab, lab.serve(days_left=15), warn_days=10, crit_days=5)) == []


def test_a_503_is_a_critical_http_status(lab: Lab) -> None:
    result = run(lab, lab.serve(status=503))
    assert [(p.code, p.severity) for p in result.problems] == [("http_status", Severity.CRITICAL)]
    assert "503" in result.problems[0].message


def test_an_unexpected_404_is_a_warning_and_an_expected_one_is_fine(lab: Lab) -> None:
    endpoint = lab.serve(status=404)
    assert [(p.code, p.severity) for p in run(lab, endpoint).problems] == [("http_status", Severity.WARNING)]
    assert codes(run(lab, endpoint, expect_status=(404,))) == []


def test_a_cache_hit_is_a_served_from_cache_warning(lab: Lab) -> None:
    result = run(lab, lab.serve(headers={"CF-Cache-Status": "HIT", "Age": "5400"}))
    assert [(p.code, p.severity) for p in result.problems] == [("served_from_cache", Severity.WARNING)]
    assert result.http is not None
    assert result.http.cache == {"cf-cache-status": "HIT", "age": "5400"}


def test_a_cache_miss_is_not_a_problem(lab: Lab) -> None:
    result = run(lab, lab.serve(headers={"X-Cache": "MISS from edge", "Age": "0"}))
    assert codes(result) == []


def test_a_missing_keyword_is_keyword_missing_and_uses_get(lab: Lab) -> None:
    endpoint = lab.serve(body=b"<html>maintenance</html>")
    result = run(lab, endpoint, keyword="Welcome")
    assert codes(result) == ["keyword_missing"]
    assert endpoint.requests[-1].method == "GET"
    assert codes(run(lab, endpoint, keyword="maintenance")) == []


def test_a_server_that_refuses_head_is_asked_again_with_get(lab: Lab) -> None:
    endpoint = lab.serve(head_status=405)
    result = run(lab, endpoint)
    assert codes(result) == []
    assert [r.method for r in endpoint.requests] == ["HEAD", "GET"]
    assert result.http is not None
    assert result.http.method == "GET"


def test_a_handshake_without_an_http_answer_is_http_timeout(lab: Lab) -> None:
    result = run(lab, lab.serve(behaviour=Behaviour.SILENT_AFTER_HANDSHAKE), timeout=0.5)
    assert codes(result) == ["http_timeout"]
    assert result.certificate is not None  # the handshake worked: what was served is still known


def test_a_closed_port_is_connect_refused(lab: Lab) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = asyncio.run(probe(ProbeTarget(url="https://x/", hostname=HOST, port=port, connect_host="127.0.0.1")))
    assert codes(result) == ["connect_refused"]


def test_a_connect_that_never_completes_is_connect_timeout() -> None:
    # a listener whose backlog is full leaves new connection attempts unanswered (SYNs are dropped)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(8):
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
                fillers.append(filler)
            result = asyncio.run(
                probe(ProbeTarget(url="https://x/", hostname=HOST, port=port, connect_host="127.0.0.1", timeout=0.5))
            )
        finally:
            for filler in fillers:
                filler.close()
    assert codes(result) == ["connect_timeout"]


def test_a_name_that_does_not_resolve_is_dns_error() -> None:
    resolver = StaticResolver({"known.test": "127.0.0.1"})
    result = asyncio.run(probe(ProbeTarget(url="https://nx.test/", hostname="nx.test", port=443), resolver=resolver))
    assert codes(result) == ["dns_error"]
    assert result.address is None


def test_every_problem_code_has_a_default_severity() -> None:
    assert set(PROBLEM_CODES) >= {
        "dns_error", "connect_refused", "connect_timeout", "tls_handshake_reset", "tls_handshake_timeout",
        "tls_alert", "tls_protocol_error", "cert_expired", "cert_not_yet_valid", "cert_hostname_mismatch",
        "cert_untrusted", "cert_expiring", "http_status", "http_timeout", "keyword_missing", "served_from_cache",
    }  # fmt: skip


@pytest.mark.parametrize("sni", ["a.example.test", "b.example.test"])
def test_the_probe_sends_the_real_sni_and_host_to_the_address_it_is_given(lab: Lab, sni: str) -> None:
    endpoint = lab.serve(sni)
    endpoint.sni_leaves = {name: lab.ca.issue(name) for name in ("a.example.test", "b.example.test")}
    result = run(lab, endpoint, hostname=sni)
    assert codes(result) == []
    assert endpoint.requests[-1].sni == sni
    assert endpoint.requests[-1].host == f"{sni}:{endpoint.port}"
    assert result.certificate is not None
    assert result.certificate.sans == (sni,)
