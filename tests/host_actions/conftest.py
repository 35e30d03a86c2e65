"""Fixtures: a running WS-Management simulator and a Host that points at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from bot.config import Host
from host_actions.scripts import Part
from host_actions.simulator import Faults, HostModel, WinRMSimulator
from host_actions.simulator.scenarios import incident_host
from host_actions.simulator.server import Auth
from host_actions.simulator.server import WinRMSimulator as _Sim
from host_actions.winrm_client import PartResult

PASSWORD_ENV = "CERTOPS_TEST_WINRM_PASSWORD"

SimFactory = Callable[..., tuple[WinRMSimulator, Host]]


@pytest.fixture
def make_sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimFactory]:
    started: list[_Sim] = []

    def factory(
        model: HostModel | None = None,
        *,
        faults: Faults | None = None,
        timeout: float = 10.0,
        auth: Auth = "basic",
    ) -> tuple[WinRMSimulator, Host]:
        sim = WinRMSimulator(model or incident_host(), faults=faults, auth=auth).start()
        started.append(sim)
        monkeypatch.setenv(PASSWORD_ENV, sim.password)
        return sim, sim.host_config(timeout=timeout, password_env=PASSWORD_ENV)

    yield factory
    for sim in started:
        sim.stop()


@pytest.fixture
def sim_host(make_sim: SimFactory) -> tuple[WinRMSimulator, Host]:
    return make_sim()


def with_timeout(host: Host, seconds: float) -> Host:
    return replace(host, timeout=seconds)


def offline_results(model: HostModel, parts: list[Part]) -> list[PartResult]:
    """What a session would return for these parts, computed without any network."""
    import json

    from host_actions.simulator.scripts import HANDLERS

    out = []
    for part in parts:
        result = json.loads(json.dumps(HANDLERS[part.name](model, dict(part.params))))
        out.append(PartResult(part.name, True, result))
    return out
