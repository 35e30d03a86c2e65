"""What a command may use: the config, the store, approvals, the prober and the host runner.

The prober and host runner are protocols so that commands stay free of network code; the bot
process wires in the real ones (bot.services).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.config import Config
from bot.core.actions import ActionFlows
from bot.core.approvals import Approvals
from bot.core.incidents import IncidentCore
from bot.core.ports import StorePort
from bot.core.services import ActionOutcome, Diagnosis, FindingView, HostRunner, Prober, RenewalView

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
