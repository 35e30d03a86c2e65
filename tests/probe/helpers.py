from __future__ import annotations

import asyncio

from bot.probe import ProbeResult, ProbeTarget, Status, probe
from tests.fakes.hostile_targets import HostileServers
from tests.fakes.tls import Endpoint, Lab

HOST = "www.example.test"


def loopback_target(port: int, **overrides: object) -> ProbeTarget:
    """A probe of `HOST` at 127.0.0.1:`port`; `overrides` are ProbeTarget fields (ca_file...)."""
    fields: dict[str, object] = {
        "url": f"https://{HOST}:{port}/",
        "hostname": HOST,
        "port": port,
        "connect_host": "127.0.0.1",
        "timeout": 2.0,
    }
    fields.update(overrides)
    return ProbeTarget(**fields)  # type: ignore[arg-type]


def target(lab: Lab, endpoint: Endpoint, **overrides: object) -> ProbeTarget:
    return loopback_target(endpoint.port, **{"ca_file": lab.ca_file, **overrides})


def probe_hostile(servers: HostileServers, port: int, **overrides: object) -> ProbeResult:
    """A probe of a hostile loopback target; never certops's own failure (status unknown)."""
    resolver = overrides.pop("resolver", None)
    result = asyncio.run(probe(loopback_target(port, **{"ca_file": servers.ca_file, **overrides}), resolver=resolver))  # type: ignore[arg-type]
    assert result.status is not Status.UNKNOWN, result.problems
    return result


def run(lab: Lab, endpoint: Endpoint, **overrides: object) -> ProbeResult:
    return asyncio.run(probe(target(lab, endpoint, **overrides)))


def codes(result: ProbeResult) -> list[str]:
    return [p.code for p in result.problems]
