from __future__ import annotations

import asyncio

from bot.probe import ProbeResult, ProbeTarget, probe
from tests.fakes.tls import Endpoint, Lab

HOST = "www.example.test"


def target(lab: Lab, endpoint: Endpoint, **overrides: object) -> ProbeTarget:
    fields: dict[str, object] = {
        "url": f"https://{HOST}:{endpoint.port}/",
        "hostname": HOST,
        "port": endpoint.port,
        "connect_host": "127.0.0.1",
        "ca_file": lab.ca_file,
        "timeout": 2.0,
    }
    fields.update(overrides)
    return ProbeTarget(**fields)  # type: ignore[arg-type]


def run(lab: Lab, endpoint: Endpoint, **overrides: object) -> ProbeResult:
    return asyncio.run(probe(target(lab, endpoint, **overrides)))


def codes(result: ProbeResult) -> list[str]:
    return [p.code for p in result.problems]
