"""What a command may use: the config, the store, approvals, the prober and the host runner.

The prober and host runner are protocols so that commands stay free of network code; the bot
process wires in the real ones (bot.services).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from bot.approvals import Approvals
from bot.config import Config, Site
from bot.probe import ProbeResult
from bot.store import Store


@dataclass(frozen=True)
class FindingView:
    code: str
    severity: str  # "critical" | "warning" | "info"
    message: str
    action: str | None = None  # the host action that would fix it
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Diagnosis:
    host: str
    summary: str
    findings: tuple[FindingView, ...]


@dataclass(frozen=True)
class ActionOutcome:
    ok: bool
    summary: str
    lines: tuple[str, ...] = ()
    proposals: tuple[FindingView, ...] = ()  # follow-up actions it suggests (e.g. retire a flagged task)


@dataclass(frozen=True)
class RenewalView:
    id: str
    hosts: tuple[str, ...]


class Prober(Protocol):
    async def probe_site(self, site: Site) -> list[ProbeResult]: ...

    async def probe_url(self, url: str) -> list[ProbeResult]: ...


class HostRunner(Protocol):
    """Runs host actions off the event loop; raises host_actions.errors.HostActionError."""

    async def diagnose(self, host: str, probe: ProbeResult | None) -> Diagnosis: ...

    async def run(self, host: str, action: str, args: tuple[str, ...]) -> ActionOutcome: ...

    async def renewals(self, host: str) -> list[RenewalView]: ...


@dataclass
class Context:
    config: Config
    store: Store
    approvals: Approvals
    prober: Prober
    hosts: HostRunner
    background: set[object] = field(default_factory=set)
