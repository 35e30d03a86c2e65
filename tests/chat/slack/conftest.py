from __future__ import annotations

from collections.abc import Iterator

import pytest

from host_actions.simulator import WinRMSimulator
from tests.chat.slack.harness import ENV, simulated_host


@pytest.fixture(autouse=True)
def slack_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake tokens in the environment, the way a deployment passes real ones."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[WinRMSimulator]:
    """Host iis01 as the WinRM simulator, in the state of the mission's incident."""
    with simulated_host(monkeypatch) as simulator:
        yield simulator
