"""A probe never reuses a connection: a reused one could answer with another site's certificate."""

from __future__ import annotations

import asyncio

from bot.probe import ProbeResult, StaticResolver, probe_many
from tests.fakes.tls import Behaviour, Lab
from tests.probe.helpers import target

NAMES = ("a.example.test", "old.example.test")


def test_concurrent_probes_of_one_address_each_get_the_certificate_for_their_own_name(lab: Lab) -> None:
    endpoint = lab.serve("a.example.test")
    endpoint.sni_leaves = {
        "a.example.test": lab.ca.issue("a.example.test"),
        "old.example.test": lab.ca.issue("old.example.test", days_left=-1),
    }
    targets = [target(lab, endpoint, hostname=NAMES[i % 2]) for i in range(20)]

    results = asyncio.run(probe_many(targets, concurrency=5))

    for result in results:
        assert result.certificate is not None
        assert result.certificate.sans == (result.target.hostname,)
        expected = [] if result.target.hostname == "a.example.test" else ["cert_expired"]
        assert [p.code for p in result.problems] == expected
    # the expired name is read twice (verified handshake, then a reading one); the good one once
    assert len(endpoint.requests) == 10
    assert [r.sni for r in endpoint.requests] == ["a.example.test"] * 10


def test_results_come_back_in_the_order_of_the_targets(lab: Lab) -> None:
    endpoints = [lab.serve(days_left=days) for days in (90, 10, 3)]
    results = asyncio.run(probe_many([target(lab, e) for e in endpoints], concurrency=3))
    assert [r.target.port for r in results] == [e.port for e in endpoints]
    assert [r.status.value for r in results] == ["ok", "warning", "critical"]


def test_no_more_probes_than_the_concurrency_bound_are_in_flight_at_once(lab: Lab) -> None:
    in_flight, most = 0, 0

    class CountingResolver(StaticResolver):
        async def resolve(self, host: str, port: int) -> str:  # the first step of every probe
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            return await super().resolve(host, port)

    def finished(_result: ProbeResult) -> None:
        nonlocal in_flight
        in_flight -= 1

    endpoints = [lab.serve(behaviour=Behaviour.SILENT_AFTER_HANDSHAKE) for _ in range(8)]
    targets = [target(lab, e, timeout=0.3) for e in endpoints]
    results = asyncio.run(probe_many(targets, concurrency=2, resolver=CountingResolver({}), on_result=finished))
    assert [r.problems[0].code for r in results] == ["http_timeout"] * 8
    assert most == 2
