"""A simulated IIS host the bot can reach both ways: WinRM (WS-Management) for host actions, and a
TLS endpoint that serves what the host's bindings say, for probes from outside."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from host_actions.simulator import HostModel, WinRMSimulator
from host_actions.simulator.model import issuer_pem
from host_actions.simulator.scenarios import incident_host
from host_actions.simulator.tls import ModelTLSServer
from tests.fakes.bot import SIM_PASSWORD_ENV, host_config


@dataclass
class SimulatedIIS:
    winrm: WinRMSimulator
    tls: ModelTLSServer
    ca_file: str

    @property
    def model(self) -> HostModel:
        return self.winrm.model

    def config(self, site: str = "www", hostname: str = "www.example.com", policy: str = "") -> str:
        """A site on this host (public name and origin both loopback), the host, and a policy."""
        return (
            f'[[sites]]\nname = "{site}"\nurl = "https://{hostname}:{self.tls.port}/"\n'
            f'origins = ["127.0.0.1:{self.tls.port}"]\nca_file = "{self.ca_file}"\ntimeout = 3\nhost = "iis01"\n'
            + host_config(self.winrm.url, self.winrm.username)
            + '[policy]\napprovers = ["slack:UAPPROVER1", "slack:UAPPROVER2", "console:tester"]\n'
            + policy
        )


@pytest.fixture
def iis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatedIIS]:
    ca_file = tmp_path / "sim-ca.pem"
    ca_file.write_bytes(issuer_pem())
    with WinRMSimulator(incident_host()) as winrm, ModelTLSServer(winrm.model) as tls:
        monkeypatch.setenv(SIM_PASSWORD_ENV, winrm.password)
        yield SimulatedIIS(winrm, tls, str(ca_file))
