"""A certificate that fails verification is read from the handshake that failed (TLS 1.3), with no
second, non-verifying connection; the result is the one the second handshake gave, to the field.
A TLS 1.2 handshake that failed shows no cipher, so it still takes the second handshake."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import Callable
from dataclasses import replace

import pytest

from bot.probe import ProbeResult, probe
from bot.probe import engine as engine_module
from bot.testbed.tls_servers import TLSServers
from tests.fakes.tls import Endpoint, Lab, MiniCA
from tests.probe.helpers import HOST, target

NOW = dt.datetime.now(dt.UTC)


def _counting(endpoint: Endpoint) -> list[int]:
    seen: list[int] = []
    endpoint.on_connect = lambda _e: seen.append(1)
    return seen


def _probe(lab: Lab, endpoint: Endpoint, **overrides: object) -> ProbeResult:
    return asyncio.run(probe(target(lab, endpoint, **overrides), now=NOW))


def _same(result: ProbeResult) -> ProbeResult:
    return replace(result, elapsed_ms=0.0, http=None if result.http is None else replace(result.http, elapsed_ms=0.0))


def _endpoints(lab: Lab) -> dict[str, Callable[[], Endpoint]]:
    intermediate = lab.ca.intermediate()
    return {
        "unknown CA": lambda: lab.servers.add(Endpoint(MiniCA("stranger root").issue(HOST))),
        "self-signed": lambda: lab.servers.add(Endpoint(MiniCA(HOST).issue(HOST))),
        "missing intermediate": lambda: lab.servers.add(Endpoint(intermediate.issue(HOST, include_chain=False))),
        "expired": lambda: lab.serve(days_left=-3),
        "not yet valid": lambda: lab.servers.add(
            Endpoint(lab.ca.issue(HOST, not_before=NOW + dt.timedelta(days=2), not_after=NOW + dt.timedelta(days=90)))
        ),
        "unknown CA, wrong name": lambda: lab.servers.add(Endpoint(MiniCA("stranger root").issue("other.test"))),
    }


@pytest.mark.parametrize(
    "kind", ["unknown CA", "self-signed", "missing intermediate", "expired", "not yet valid", "unknown CA, wrong name"]
)
def test_a_certificate_that_fails_verification_is_read_on_one_connection_with_the_same_result(
    lab: Lab, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    make = _endpoints(lab)[kind]
    once = make()
    once_count = _counting(once)
    one = _probe(lab, once)
    assert one.status.value == "critical", one.problems
    assert one.tls is not None
    assert one.tls.version == "TLSv1.3"
    assert len(once_count) == 1  # the failed handshake alone

    # the same server, read as before: the failed handshake shows nothing, a second one reads it
    monkeypatch.setattr(engine_module._Seen, "of", staticmethod(lambda _stream: None))
    twice = make()
    twice.leaf = once.leaf
    twice_count = _counting(twice)
    two = _probe(lab, twice)
    assert len(twice_count) == 2
    assert _same(one) == replace(_same(two), target=one.target, address=one.address)


def test_a_tls_1_2_handshake_that_failed_verification_is_read_with_a_second_handshake(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = TLSServers._new_context

    def at_most_tls_1_2(self: TLSServers, endpoint: Endpoint) -> ssl.SSLContext:
        ctx = made(self, endpoint)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    monkeypatch.setattr(TLSServers, "_new_context", at_most_tls_1_2)
    endpoint = lab.servers.add(Endpoint(MiniCA("stranger root").issue(HOST)))
    count = _counting(endpoint)
    result = _probe(lab, endpoint)
    assert [p.code for p in result.problems] == ["cert_untrusted"]
    assert "unknown CA" in result.problems[0].message
    assert result.tls is not None
    assert result.tls.version == "TLSv1.2"
    assert result.certificate is not None
    assert "stranger root" in result.certificate.issuer
    assert len(count) == 2
