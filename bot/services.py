"""The real prober and host runner behind the platform-neutral commands.

Host actions block (pywinrm has no async API), so they run on the WinRM worker threads
(host_actions.winrm_client.arun): never on the event loop, never on a chat SDK's listener threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from bot.config import Config, Host, Site
from bot.core.services import ActionOutcome, Diagnosis, FindingView, RenewalView
from bot.probe import ProbeResult, ProbeTarget, Resolver, probe_many
from bot.probe.pool import ProbePool
from bot.probe.targets import site_targets, url_target
from host_actions import actions
from host_actions.errors import HostActionError
from host_actions.inventory import inventory
from host_actions.registry import host_action
from host_actions.winrm_client import arun


class SiteProber:
    """Every probe the bot makes. With [bot] probe_workers above 1 they run in worker processes
    (bot.probe.pool), started at the first probe or by start(); with 1, in this process.

    A `resolver` (tests and the demo pass one) is an object of this process and can't cross into
    a worker: given one, the prober probes in this process whatever probe_workers says."""

    def __init__(
        self, config: Config, resolver: Resolver | None = None, *, on_restart: Callable[[], None] | None = None
    ) -> None:
        self.config = config
        self.resolver = resolver
        self._gate = asyncio.Semaphore(config.bot.probe_concurrency)
        workers = config.bot.probe_workers
        self.pool = ProbePool(workers, on_restart=on_restart) if workers > 1 and resolver is None else None

    async def start(self) -> None:
        if self.pool is not None:
            await self.pool.start()

    async def close(self) -> None:
        """Ends the workers; a probe asked for later (a late command at shutdown) runs in process."""
        if self.pool is not None:
            await self.pool.close()

    async def probe_site(self, site: Site) -> list[ProbeResult]:
        return await self._probe(site_targets(site))

    async def probe_url(self, url: str) -> list[ProbeResult]:
        return await self._probe([url_target(url, [], warn_days=21, crit_days=7, timeout=10.0, ca_file=None)])

    async def _probe(self, targets: list[ProbeTarget]) -> list[ProbeResult]:
        # one gate for every probe the bot makes: [bot] probe_concurrency bounds them all together
        # the caller records them (IncidentCore.observe, or /ssl status for a first look)
        if self.pool is not None and not self.pool.closed:
            return await self.pool.probe_many(targets, gate=self._gate)
        return await probe_many(targets, resolver=self.resolver, gate=self._gate)


class HostActionRunner:
    def __init__(self, config: Config) -> None:
        self.config = config

    def _host(self, name: str) -> Host:
        host = self.config.host(name)
        if host is None:
            raise HostActionError("unreachable", f'No host named "{name}" in the config.', host=name)
        return host

    async def diagnose(self, host: str, probe: ProbeResult | None) -> Diagnosis:
        _inv, findings, result = await arun(actions.diagnose_host, self._host(host), probe)
        views = tuple(
            FindingView(
                f.code,
                f.severity,
                f.message,
                f.proposal.action if f.proposal else None,
                tuple(f.proposal.args) if f.proposal else (),
                f.names,
            )
            for f in findings
        )
        return Diagnosis(host, result.summary, views)

    async def run(self, host: str, action: str, args: tuple[str, ...]) -> ActionOutcome:
        cfg = self._host(host)
        result = await arun(host_action(action).run, cfg, args)
        running = bool(result.details.get("running"))
        return ActionOutcome(result.ok, result.summary, _lines(result), _task_proposals(result), running)

    async def renewals(self, host: str) -> list[RenewalView]:
        inv = await arun(inventory, self._host(host))
        return [RenewalView(r.id, tuple(r.hosts)) for r in inv.renewals]


def _lines(result: actions.ActionResult) -> tuple[str, ...]:
    tasks = result.details.get("tasks")
    if isinstance(tasks, list):
        flagged = [t for t in tasks if t.get("flags")]
        return tuple(f"{t['path']}: " + "; ".join(str(f["detail"]) for f in t["flags"]) for t in flagged)
    return ()


def _task_proposals(result: actions.ActionResult) -> tuple[FindingView, ...]:
    tasks = result.details.get("tasks")
    if result.action != "audit-tasks" or not isinstance(tasks, list):
        return ()
    return tuple(
        FindingView("legacy_task", "warning", f"{t['path']} is flagged", "retire-task", (t["path"],))
        for t in tasks
        if t.get("flags") and not t.get("wacs") and t.get("state") != "Disabled"
    )
