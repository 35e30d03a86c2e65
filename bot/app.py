"""Wires the bot together: store, approvals, prober, host runner, dispatcher and worker.

Chat adapters and the web server receive a Core; tests build the same Core around loopback
stand-ins, so what they exercise is what runs in production.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.approvals import Approvals
from bot.config import Config
from bot.probe import Resolver
from bot.services import HostActionRunner, SiteProber
from bot.store import Store
from bot.worker import Worker
from commands.context import Context
from commands.dispatch import CommandDispatcher


@dataclass
class Core:
    config: Config
    store: Store
    approvals: Approvals
    prober: SiteProber
    hosts: HostActionRunner
    dispatcher: CommandDispatcher
    worker: Worker

    def close(self) -> None:
        self.store.close()


def build_core(config: Config, *, database: str | None = None, resolver: Resolver | None = None) -> Core:
    """Must be called inside a running event loop (the prober and worker use asyncio primitives)."""
    store = Store(database or config.bot.database)
    store.prune_seen_events()
    for request in store.fail_interrupted():
        store.audit("certops", "run", f"{request.action} {request.target} on {request.host}", "failed", "interrupted")
    approvals = Approvals(store, config.policy)
    prober = SiteProber(config, store, resolver)
    hosts = HostActionRunner(config)
    ctx = Context(config, store, approvals, prober, hosts)
    return Core(config, store, approvals, prober, hosts, CommandDispatcher(ctx), Worker())
