"""A simulated Windows/IIS host that speaks WS-Management, for tests, benchmarks and demos."""

from host_actions.simulator.model import HostModel
from host_actions.simulator.server import Faults, WinRMSimulator

__all__ = ["Faults", "HostModel", "WinRMSimulator"]
