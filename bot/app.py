"""Wires the bot together: store, incident core, action flows, approvals, prober, host runner
(behind the host guard, which joins and reuses diagnoses), rate limits, dispatcher, watcher (the
scheduler), outbox and metrics.

Chat adapters and the web server receive a Core; tests build the same Core around loopback
stand-ins, so what they exercise is what runs in production.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.chat.base import Destination
from bot.config import Config
from bot.core.actions import ActionFlows
from bot.core.agents import AgentDesk
from bot.core.approvals import Approvals
from bot.core.host_guard import HostGuard
from bot.core.incidents import Clock, IncidentCore, system_clock
from bot.core.model import ActionRequest, Cause, Step
from bot.core.reports import ReportDesk
from bot.leader import LeaderElector, replica_id
from bot.metrics import Metrics
from bot.outbox import OutboxWorker
from bot.probe import Resolver
from bot.scheduler import Watcher
from bot.services import HostActionRunner, SiteProber
from bot.store import Store, open_store
from bot.worker import Worker
from commands.context import Context
from commands.dispatch import CommandDispatcher
from commands.limits import RateLimits
from commands.render import render_message


@dataclass
class Core:
    config: Config
    store: Store
    approvals: Approvals
    prober: SiteProber
    hosts: HostGuard  # around the HostActionRunner: hosts.runner
    dispatcher: CommandDispatcher
    worker: Worker
    incidents: IncidentCore
    flows: ActionFlows
    metrics: Metrics
    watcher: Watcher
    outbox: OutboxWorker
    reports: ReportDesk
    destinations: dict[str, Destination] = field(default_factory=dict)
    # replicas on one PostgreSQL database: only the lease holder watches (None: this one always leads)
    elector: LeaderElector | None = None
    new_watcher: Callable[[], Watcher] | None = None  # a fresh scheduler for each term this replica leads
    agents: AgentDesk | None = None  # the probe agents' work, results, quorum and heartbeats

    @property
    def leading(self) -> bool:
        return self.elector is None or self.elector.leading

    def attach(self, destination: Destination) -> None:
        """Cards and digests go to this chat from now on (Slack, LINE, the console)."""
        self.destinations[destination.platform] = destination  # the outbox worker shares this dict
        self.outbox.wake()

    async def start(self) -> None:
        """Starts watching: the outbox worker, then the scheduler (attach the chats first); with
        replicas, once this one holds the leader lease (every replica answers chat meanwhile)."""
        await self.prober.start()  # the probe workers, if any: the first round need not wait for them
        if self.elector is None:
            await self._lead()
        else:
            self.elector.start()

    async def _lead(self) -> None:
        self.outbox.start()
        if self.watcher.stopped and self.new_watcher is not None:
            self.watcher = self.new_watcher()  # an APScheduler that was shut down does not start again
        await self.watcher.start()

    async def _follow(self) -> None:
        await self.watcher.stop()
        await self.outbox.stop()

    async def stop(self) -> None:
        """In order: no new probes, running work finishes, and its messages are delivered."""
        await self.watcher.stop()
        await self.worker.drain()  # follow-ups deliver through their adapters first
        if self.elector is not None:
            await self.elector.stop()  # then the outbox stops with the lead, and the lease is given up
        await self.prober.close()  # nothing probes any more: the probe workers end
        await self.outbox.stop()

    def close(self) -> None:
        self.store.close()


def build_core(
    config: Config,
    *,
    database: str | None = None,
    resolver: Resolver | None = None,
    clock: Clock = system_clock,
) -> Core:
    """Must be called inside a running event loop (the prober and worker use asyncio primitives)."""
    password = config.bot.database_password
    store = open_store(database or config.bot.database, password=password.resolve() if password else None)
    store.prune_seen_events()
    replicated = store.url.get_backend_name() != "sqlite"  # SQLite's file lock makes this process the only one
    holder = replica_id() if replicated else None
    store.runner = holder
    if holder is not None:
        store.touch_replica(holder, clock())  # alive before the first press it may run
    # runs a dead process left "running" (each audited as failed, interrupted); with replicas only
    # those of replicas gone for two leases, never another live replica's (the leader keeps looking)
    gone_after = 2 * config.bot.leader_lease if replicated else None
    interrupted = store.fail_interrupted(gone_after)
    destinations: dict[str, Destination] = {}
    metrics = Metrics()

    # a plain function: the worker runs it in a thread, as it reads the store
    outbox = OutboxWorker(store, destinations, functools.partial(render_message, config, store), clock=clock)
    configured = [name for name, part in (("slack", config.slack), ("line", config.line)) if part is not None]

    def platforms() -> list[str]:
        # the configured chats even before their adapters are attached (their rows wait), and
        # any attached later, such as the console
        return [*configured, *(p for p in destinations if p not in configured)]

    incidents = IncidentCore(store, config, platforms=platforms, clock=clock, on_message=outbox.wake)
    _note_interrupted(incidents, interrupted)
    for incident in incidents.reconcile():
        store.audit("certops", "resolve", incident.id, "done", incident.resolution or "")
    approvals = Approvals(store, config.policy)
    # only an approver's (or the bot's own) new proposal replaces a waiting button
    store.may_supersede = approvals.may_supersede
    prober = SiteProber(config, resolver, on_restart=metrics.probe_worker_restarts.inc)
    # one guard for the commands, the flows and the scheduler: whoever asks, a host is read once
    hosts = HostGuard(HostActionRunner(config), clock=clock)
    flows = ActionFlows(config, store, incidents, prober, hosts, on_run=_count_runs(metrics))
    limits = RateLimits(config.policy, clock=clock)
    ctx = Context(config, store, approvals, prober, hosts, incidents, flows, limits=limits)
    reports = ReportDesk(incidents)
    agents = AgentDesk(incidents)

    def new_watcher() -> Watcher:
        # the scheduled host check looks afresh each time; what it reads is reused by the others
        return Watcher(config, incidents, flows, prober, hosts.looking(), metrics, reports=reports, agents=agents)

    watcher = new_watcher()
    metrics.add_gauges(
        lambda: {
            "certops_incidents_open": ("Incidents open now", float(len(store.open_incidents()))),
            "certops_outbox_pending": ("Chat messages waiting to be delivered", float(store.pending_count())),
            "certops_outbox_failed_total": (
                "Chat messages given up on after a permanent error",
                float(store.failed_count()),
            ),
        }
    )
    core = Core(
        config,
        store,
        approvals,
        prober,
        hosts,
        CommandDispatcher(ctx),
        Worker(),
        incidents,
        flows,
        metrics,
        watcher,
        outbox,
        reports,
        destinations,
        new_watcher=new_watcher,
        agents=agents,
    )
    if replicated:

        async def settle_orphans() -> None:
            orphans = await asyncio.to_thread(store.fail_interrupted, gone_after)
            await asyncio.to_thread(_note_interrupted, incidents, orphans)

        core.elector = LeaderElector(
            store,
            config.bot.leader_lease,
            on_elected=core._lead,
            on_deposed=core._follow,
            on_leading=settle_orphans,
            clock=clock,
            holder=holder,
        )
    metrics.add_gauges(
        lambda: {
            "certops_leader": ("1 while this replica leads (runs the scheduler and the outbox)", float(core.leading))
        }
    )
    return core


def _note_interrupted(incidents: IncidentCore, requests: list[ActionRequest]) -> None:
    for request in requests:
        if request.incident_id:
            incidents.note(
                request.incident_id,
                Step.ACTED,
                f"{request.action} {request.target} on {request.host} was interrupted when certops (or the "
                "replica running it) stopped; the host may or may not have changed",
                "certops",
                cause=Cause.SYSTEM,
                notable=True,
            )


def _count_runs(metrics: Metrics) -> Callable[[str, str, str], None]:
    def count(host: str, action: str, outcome: str) -> None:
        metrics.host_actions.labels(host, action, outcome).inc()

    return count
