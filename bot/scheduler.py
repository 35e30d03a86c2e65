"""The watcher: APScheduler 3.11 jobs, rebuilt from the config at every start, that probe each
site at its interval, check each host, send the digest and keep incidents moving with time.

One job per site (coalesced, one run at a time), spread over the first interval so that 10,000
sites don't fire in the same second. A job never dies of one site's error: a probe that raises
is recorded as probe_error for that site and the loop goes on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import random
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.config import Config
from bot.config.model import LOCAL
from bot.core.actions import ActionFlows
from bot.core.agents import AgentDesk
from bot.core.incidents import IncidentCore, Observation
from bot.core.ports import StoreRefused
from bot.core.reports import ReportDesk
from bot.core.services import HostRunner, Prober
from bot.logs import Throttle, logger
from bot.metrics import Metrics
from bot.probe.engine import failed_probe
from bot.probe.targets import site_targets
from bot.reports.signature import MAX_SKEW
from host_actions.errors import HostActionError

log = logger(__name__)
_REFUSALS = Throttle(log, interval=60.0)

JOBS_PER_BATCH = 200
PRUNE_SECONDS = 600.0  # how often the tick forgets spent signatures
TICK_SECONDS = 15.0  # renotifications, the end of mute and maintenance windows, silent self-heal tasks
ASKED_SECONDS = 2.0  # how often the leader takes up the rounds other replicas asked for
HEARTBEAT_TIMEOUT = 10.0
DAY = 86400.0


class Watcher:
    def __init__(
        self,
        config: Config,
        incidents: IncidentCore,
        flows: ActionFlows,
        prober: Prober,
        hosts: HostRunner,
        metrics: Metrics,
        *,
        reports: ReportDesk | None = None,
        agents: AgentDesk | None = None,
    ) -> None:
        """`reports`: whose heartbeats the incident clock checks (None: the hosts' reports are not watched).
        `agents`: the probe agents' desk, which judges sites watched from several vantage points
        and checks the agents' heartbeats (None: every site is judged on the bot's probes alone)."""
        self.config = config
        self.reports = reports
        self.agents = agents
        if agents is not None:
            agents.reschedule = self._probe_again
        self.incidents = incidents
        self.flows = flows
        self.prober = prober
        self.hosts = hosts
        self.metrics = metrics
        self.scheduler = AsyncIOScheduler(
            timezone=config.bot.tz(),
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self.scheduler.add_listener(self._submitted, EVENT_JOB_SUBMITTED)
        self.scheduler.add_listener(lambda _event: metrics.scheduler_skipped.inc(), EVENT_JOB_MAX_INSTANCES)
        flows.reschedule = self._probe_again
        self._round: set[str] = set()  # sites probed since the last heartbeat
        self._tasks: set[asyncio.Task[Any]] = set()  # diagnoses and verifications started by jobs
        self._jobs: set[asyncio.Task[Any]] = set()
        self.started = False
        self.stopped = False  # shut down: this scheduler cannot start again
        self._pruned_at = float("-inf")

    # lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Starts the scheduler, then adds the jobs in small batches: 10,000 sites' jobs added in
        one go held the event loop (and /healthz) for half a second."""
        self.scheduler.start()
        self.started = True
        now = dt.datetime.now(self.scheduler.timezone)
        digest = self.config.bot.digest_at
        if digest is not None:
            hour, minute = digest
            trigger = CronTrigger(hour=hour, minute=minute, timezone=self.scheduler.timezone)
            self.scheduler.add_job(self._job, trigger, args=[self.digest], id="digest", name="daily digest")
        tick = IntervalTrigger(seconds=TICK_SECONDS)
        self.scheduler.add_job(self._job, tick, args=[self.tick], id="tick", name="incident clock")
        asked = IntervalTrigger(seconds=ASKED_SECONDS)
        self.scheduler.add_job(self._job, asked, args=[self.take_probe_requests], id="asked", name="rounds asked for")
        for host in self.config.hosts:
            self.scheduler.add_job(
                self._job,
                IntervalTrigger(seconds=host.check_interval, jitter=min(host.check_interval / 10, 300.0)),
                args=[self.check_host, host.name],
                id=f"host:{host.name}",
                name=f"check {host.name}",
                replace_existing=True,
            )
        for number, site in enumerate(self.config.sites):
            spread = random.uniform(0, site.interval)  # noqa: S311 - spreading load, not secrecy
            self.scheduler.add_job(
                self._job,
                IntervalTrigger(seconds=site.interval, jitter=min(site.interval / 10, 30.0)),
                args=[self.probe_site, site.name],
                id=f"probe:{site.name}",
                name=f"probe {site.name}",
                next_run_time=now + dt.timedelta(seconds=spread),
                replace_existing=True,
            )
            if number % JOBS_PER_BATCH == JOBS_PER_BATCH - 1:
                await asyncio.sleep(0)
        self._diagnose_leftovers()
        # what start-up built lives as long as the process: out of the collector's way, so its
        # full collections do not walk 10,000 sites' jobs and configs again and again
        gc.freeze()
        log.info("watching %d site(s) and %d host(s)", len(self.config.sites), len(self.config.hosts))

    def _diagnose_leftovers(self) -> None:
        """An incident opened just before certops was stopped (or killed) may never have been
        diagnosed: diagnose it now, from the last results stored."""
        for incident in self.incidents.store.open_incidents():
            site = self.config.site(incident.site or "")
            if site is None or site.host is None or incident.diagnosis:
                continue
            results = self.incidents.store.last_results(site.name)
            self._spawn(self.flows.diagnose_incident(site, incident.id, results), f"diagnose:{site.name}")

    async def stop(self, timeout: float = 30.0) -> None:
        """Stops starting jobs, lets running ones finish (bounded), then cancels what is left."""
        if not self.started:
            return
        self.scheduler.shutdown(wait=False)
        self.started = False
        self.stopped = True
        await asyncio.sleep(0)  # a job submitted just before the shutdown starts now: wait for it too
        deadline = asyncio.get_running_loop().time() + timeout
        while self._jobs or self._tasks:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                for task in [*self._jobs, *self._tasks]:
                    task.cancel()
                break
            await asyncio.wait([*self._jobs, *self._tasks], timeout=left)

    async def idle(self, timeout: float = 60.0) -> None:
        """Waits for the diagnoses and verifications started by jobs (tests, the demo, stop)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    @property
    def running(self) -> bool:
        return self.started and self.scheduler.running

    async def _job(self, work: Callable[..., Awaitable[object]], *args: object) -> None:
        """What APScheduler runs: the job itself, known to stop() while it runs."""
        task = asyncio.current_task()
        if task is not None:
            self._jobs.add(task)
        try:
            await work(*args)
        except asyncio.CancelledError:
            # only at shutdown, after stop() gave it time: the round is abandoned, nothing half-written
            log.info("a scheduled job was stopped while it ran")
        except StoreRefused as exc:
            _REFUSALS.warning("store-refused", "a scheduled job could not save its work: %s", exc.reason)
        except Exception:
            log.exception("a scheduled job failed; it runs again at its next time")
        finally:
            if task is not None:
                self._jobs.discard(task)

    def _submitted(self, event: JobSubmissionEvent) -> None:
        now = dt.datetime.now(dt.UTC)
        for planned in event.scheduled_run_times:
            self.metrics.scheduler_lag.observe(max(0.0, (now - planned).total_seconds()))

    def _spawn(self, work: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    # jobs -------------------------------------------------------------------------------------

    async def probe_site(self, name: str) -> Observation | None:
        site = self.config.site(name)
        if site is None:
            return None
        try:
            # a site probed only by agents has no probes here: its round judges what they reported
            results = await self.prober.probe_site(site) if LOCAL in site.vantage else []
        except Exception:
            log.exception("probing %s raised; recorded as probe_error", name, extra={"site": name})
            results = [failed_probe(t) for t in site_targets(site)]
        self.metrics.observe_probes(results)
        judged = results
        try:
            if self.agents is not None:
                observation, judged = await asyncio.to_thread(self.agents.observe, site, results)
            else:
                observation = await asyncio.to_thread(self.incidents.observe, site, results)
        except StoreRefused as exc:
            # every site of every round would say the same thing: one line a minute, with a count
            _REFUSALS.warning("store-refused", "probe results are not recorded: %s", exc.reason)
            return None
        except Exception:
            log.exception("recording the probes of %s failed", name, extra={"site": name})
            return None
        self._spawn(self.flows.follow_up(site, observation, judged), f"follow-up:{name}")
        await self._round_done(name)
        return observation

    def _probe_again(self, site: str, seconds: float) -> None:
        """A round of `site` within `seconds`. On a replica that does not lead (its scheduler not
        running), asked of the leader through the store: agents' results and presses land on
        any replica."""
        soon = dt.datetime.now(self.scheduler.timezone) + dt.timedelta(seconds=seconds)
        if not self.started or self.stopped:
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # a worker thread (the agents' desk): the write may wait here
                self._ask_leader(site, soon)
            else:  # the event loop (a follow-up): never a database write on it
                self._spawn(asyncio.to_thread(self._ask_leader, site, soon), f"ask:{site}")
            return
        job = self.scheduler.get_job(f"probe:{site}")
        if job is not None and (job.next_run_time is None or job.next_run_time > soon):
            job.modify(next_run_time=soon)

    def _ask_leader(self, site: str, soon: dt.datetime) -> None:
        try:
            self.incidents.store.ask_probe_soon(site, soon)
        except StoreRefused as exc:  # the leader's own schedule still comes round
            log.warning("could not ask the leader to probe %s soon (%s)", site, exc.reason, extra={"site": site})

    async def take_probe_requests(self) -> None:
        """The rounds other replicas asked for (see _probe_again), now on this leader's schedule."""
        asked = await asyncio.to_thread(self.incidents.store.take_probe_soon)
        now = dt.datetime.now(dt.UTC)
        for site, due in asked.items():
            self._probe_again(site, max(0.0, (due - now).total_seconds()))

    async def check_host(self, name: str) -> None:
        """The scheduled read-only inventory and diagnosis (certificates and their keys, bindings,
        renewals against their due date, legacy scheduled tasks): what needs a person becomes the
        host's incident, with the proposed actions as buttons."""
        try:
            diagnosis = await self.hosts.diagnose(name, None)
        except HostActionError as exc:
            log.warning(
                "scheduled check of %s failed: %s",
                name,
                exc.message,
                extra={"host": name, "action": "check", "outcome": exc.kind},
            )
            return
        incident, opened = await asyncio.to_thread(self.incidents.observe_host, name, diagnosis.findings)
        log.info("checked %s: %s", name, diagnosis.summary, extra={"host": name, "action": "check", "outcome": "done"})
        if opened and incident is not None:
            await self.flows.propose(
                diagnosis.findings, host=name, site=None, incident_id=incident.id, requester="certops"
            )
            await asyncio.to_thread(self.incidents.record_diagnosis, incident.id, incident.details)

    async def digest(self) -> None:
        await asyncio.to_thread(self.incidents.digest)

    async def tick(self) -> None:
        await asyncio.to_thread(self.incidents.tick)
        now = asyncio.get_running_loop().time()
        if now - self._pruned_at >= PRUNE_SECONDS:
            self._pruned_at = now
            # signatures of /api/report and the agents' requests, kept twice the window they are valid in
            await asyncio.to_thread(self.incidents.store.prune_signatures, ("report", "agent"), 4 * MAX_SKEW)
        if self.reports is not None:
            for incident in await asyncio.to_thread(self.reports.check_heartbeats):
                log.warning(
                    "%s: %s", incident.id, incident.summary, extra={"incident": incident.id, "host": incident.host}
                )
        if self.agents is not None:
            for incident in await asyncio.to_thread(self.agents.check_heartbeats):
                log.warning("%s: %s", incident.id, incident.summary, extra={"incident": incident.id})

    async def _round_done(self, name: str) -> None:
        self._round.add(name)
        if len(self._round) < len(self.config.sites):
            return
        self._round.clear()
        url = self.config.bot.heartbeat_url
        if url:
            await self._ping(url)

    async def _ping(self, url: str) -> None:
        try:
            async with httpx.AsyncClient(timeout=HEARTBEAT_TIMEOUT, follow_redirects=False) as client:
                response = await client.get(url)
            if response.status_code >= 400:
                raise httpx.HTTPStatusError("bad status", request=response.request, response=response)
        except httpx.HTTPError as exc:
            # the URL may hold a secret token: name only its host
            self.metrics.heartbeat_failures.inc()
            log.warning("heartbeat ping to %s failed (%s)", self.config.bot.heartbeat_label(), type(exc).__name__)
