"""What a command may use: the config, the store, approvals, the prober, the host runner and
the rate limits.

The prober and host runner are protocols so that commands stay free of network code; the bot
process wires in the real ones (bot.services, behind bot.core.host_guard).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.config import Config
from bot.core.actions import ActionFlows
from bot.core.approvals import Approvals
from bot.core.incidents import IncidentCore
from bot.core.ports import StorePort
from bot.core.services import ActionOutcome, Diagnosis, FindingView, HostRunner, Prober, RenewalView
from commands.limits import RateLimits

__all__ = ["ActionOutcome", "Context", "Diagnosis", "FindingView", "HostRunner", "Prober", "RenewalView"]


@dataclass
class Context:
    config: Config
    store: StorePort
    approvals: Approvals
    prober: Prober
    hosts: HostRunner
    incidents: IncidentCore
    flows: ActionFlows
    background: set[object] = field(default_factory=set)
    limits: RateLimits | None = None  # None: built from config.policy at the first command

    def rate_limits(self) -> RateLimits:
        if self.limits is None:
            self.limits = RateLimits(self.config.policy)
        return self.limits
