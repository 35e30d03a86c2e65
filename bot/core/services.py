"""What the core needs from the outside world besides storage: probing sites and running host
actions. The bot process wires in the real ones (bot.services); both are async and never block
the event loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.config import Site
from bot.probe import ProbeResult


@dataclass(frozen=True)
class FindingView:
    code: str
    severity: str  # "critical" | "warning" | "info"
    message: str
    action: str | None = None  # the host action that would fix it
    args: tuple[str, ...] = ()
    names: tuple[str, ...] = ()  # the DNS names it concerns; () for the host as a whole


@dataclass(frozen=True)
class Diagnosis:
    host: str
    summary: str
    findings: tuple[FindingView, ...]
    # for a site: what the host shows beside it (a legacy task, another site's renewal), put on
    # the host's own card (`host_incident`) or offered without an incident, never on the site's
    elsewhere: tuple[FindingView, ...] = ()
    host_incident: str | None = None


@dataclass(frozen=True)
class ActionOutcome:
    ok: bool
    summary: str
    lines: tuple[str, ...] = ()
    proposals: tuple[FindingView, ...] = ()  # follow-up actions it suggests (e.g. retire a flagged task)
    running: bool = False  # still at it on the host (a renewal's scheduled task): run it again to follow it


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
