"""Run-once-then-verify: an approved (or policy-allowed) host action runs exactly once, and an
incident closes only after a probe from outside sees the site healthy and, where the host is
known, serving the newest usable certificate the host has.

Returns data (RunResult, Verification); `commands/` renders it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.config import Config, Site
from bot.core.describe import describe, finding_line
from bot.core.incidents import IncidentCore, Observation
from bot.core.model import ActionRequest, Cause, RequestState, Step
from bot.core.ports import StorePort
from bot.core.services import ActionOutcome, Diagnosis, FindingView, HostRunner, Prober
from bot.logs import logger
from bot.probe import ProbeResult
from host_actions.errors import HostActionError
from host_actions.registry import ACTIONS

log = logger(__name__)


@dataclass(frozen=True)
class Verification:
    healthy: bool
    lines: tuple[str, ...]
    resolved: bool  # the incident was closed by this verification


@dataclass(frozen=True)
class RunResult:
    request: ActionRequest
    ok: bool
    summary: str
    lines: tuple[str, ...] = ()
    proposals: tuple[FindingView, ...] = ()
    stale: str | None = None  # not run: the host changed since it was proposed
    error: str | None = None  # the action could not run or failed on the host
    verification: Verification | None = None


# actions whose argument is opaque to a person (a renewal id): the request names what it is for
NAMED_BY_SITE = ("renew", "add-post-renew-step")


def target_of(finding: FindingView, host: str) -> str:
    """What a request acts on, readable: its arguments, and for a renewal the name it renews
    ("mZ3Yk1fWbkW0yJbqv7NfVw (api.example.com)"), so two such buttons can be told apart."""
    target = " ".join(finding.args) or host
    if finding.action in NAMED_BY_SITE and finding.names:
        target += f" ({finding.names[0]})"
    return target


def named_in(target: str) -> str | None:
    """The name target_of put in a request's target ("RID (api.example.com)": "api.example.com")."""
    found = _NAMED.search(target)
    return found.group(1) if found else None


_NAMED = re.compile(r" \(([^()\s]+)\)$")


def about_site(finding: FindingView, site: Site) -> bool:
    """Whether a finding concerns the site: one of its names is the site's host name, or a
    wildcard covering it (one label). A finding about no name is about the host as a whole."""
    host = site.hostname.lower()
    parent = host.partition(".")[2]
    return any(n.lower() == host or (n.startswith("*.") and n[2:].lower() == parent) for n in finding.names)


def host_facing(results: list[ProbeResult]) -> list[ProbeResult]:
    """The probes that show what the IIS host itself serves: its origins, or else the public name
    when no CDN answered there (a CDN edge presents its own certificate, not the host's)."""
    origins = [r for r in results if r.target.via == "origin"]
    if origins:
        return origins
    return [r for r in results if not (r.http and r.http.cache)]


class ActionFlows:
    def __init__(
        self,
        config: Config,
        store: StorePort,
        incidents: IncidentCore,
        prober: Prober,
        hosts: HostRunner,
        *,
        on_run: Callable[[str, str, str], None] = lambda host, action, outcome: None,
    ) -> None:
        """`on_run(host, action, outcome)`: told of every run's outcome (the metrics count them)."""
        self.on_run = on_run
        # set by the scheduler: probe this site again this many seconds from now
        self.reschedule: Callable[[str, float], None] = lambda site, seconds: None
        self._verifying: set[str] = set()
        # how often, and how many times, a running action is followed: a renewal's task may run
        # for up to 2 hours (win-acme's own limit on it)
        self.follow_every = 30.0
        self.follow_limit = 250
        self.config = config
        self.store = store
        self.incidents = incidents
        self.prober = prober
        self.hosts = hosts

    async def run(self, request: ActionRequest, approved_by: str) -> RunResult:
        """Runs a request that is already claimed (running), then checks the site from outside."""
        subject = f"{request.action} {request.target} on {request.host}"
        store = self.store
        started = time.monotonic()
        fields = {"host": request.host, "action": request.action, "site": request.site, "incident": request.incident_id}
        await self._step(request, Step.RUNNING, f"{subject}: running (approved by {approved_by})", approved_by, False)
        try:
            stale = await self._stale(request)
            if stale:
                await asyncio.to_thread(
                    store.claim_request, request.token, RequestState.RUNNING, RequestState.STALE, stale
                )
                await asyncio.to_thread(store.audit, "certops", "run", subject, "refused", stale)
                self.on_run(request.host, request.action, "stale")
                log.info("%s: not run: %s", subject, stale, extra={**fields, "outcome": "stale"})
                return RunResult(request, False, f"{request.action} not run", stale=stale)
            outcome = await self.hosts.run(request.host, request.action, request.args)
            outcome = await self._follow(request, subject, outcome)
        except HostActionError as exc:
            await asyncio.to_thread(
                store.claim_request, request.token, RequestState.RUNNING, RequestState.FAILED, exc.message
            )
            await asyncio.to_thread(store.audit, "certops", "run", subject, "failed", f"{exc.kind}: {exc.message}")
            await self._step(request, Step.ACTED, f"{subject} failed: {exc.message}", "certops", True)
            self.on_run(request.host, request.action, "error")
            seconds = time.monotonic() - started
            log.warning(
                "%s failed: %s", subject, exc.message, extra={**fields, "outcome": exc.kind, "seconds": seconds}
            )
            return RunResult(request, False, f"{request.action} on {request.host} failed", error=exc.message)
        except BaseException:
            # never leave a request "running" for ever: nothing would run it again
            store.claim_request(request.token, RequestState.RUNNING, RequestState.FAILED, "interrupted")
            store.audit("certops", "run", subject, "failed", "interrupted by an internal error or shutdown")
            raise
        done = RequestState.DONE if outcome.ok else RequestState.FAILED
        if not await asyncio.to_thread(store.claim_request, request.token, RequestState.RUNNING, done, outcome.summary):
            log.warning("request %s was no longer running when its result came back", request.token, extra=fields)
        await asyncio.to_thread(
            store.audit, "certops", "run", subject, "ok" if outcome.ok else "failed", outcome.summary
        )
        await self._step(request, Step.ACTED, f"{subject}: {outcome.summary}", "certops", True)
        self.on_run(request.host, request.action, "ok" if outcome.ok else "failed")
        log.info(
            "%s: %s",
            subject,
            outcome.summary,
            extra={**fields, "outcome": "done" if outcome.ok else "failed", "seconds": time.monotonic() - started},
        )
        verification = None
        if request.site and outcome.ok:
            verification = await self.verify(request.site, request.incident_id, Cause.ACTION, after=request.action)
        return RunResult(
            request,
            outcome.ok,
            outcome.summary,
            outcome.lines,
            outcome.proposals,
            error=None if outcome.ok else outcome.summary,
            verification=verification,
        )

    async def _follow(self, request: ActionRequest, subject: str, outcome: ActionOutcome) -> ActionOutcome:
        """An action still running on the host (a renewal's task outlives one WinRM deadline) is
        asked again until it ends; each answer goes on the card, so it shows the progress."""
        for _ in range(self.follow_limit):
            if not outcome.running:
                break
            await self._step(request, Step.RUNNING, f"{subject}: {outcome.summary}", "certops", True)
            await asyncio.sleep(self.follow_every)
            outcome = await self.hosts.run(request.host, request.action, request.args)
        return outcome

    async def follow_up(self, site: Site, observation: Observation, results: list[ProbeResult]) -> None:
        """Does what a round of probes asked for, whoever probed (the scheduler, /ssl check, a
        verification): probe again soon, diagnose a new incident, verify a recovery."""
        if observation.retry_in is not None:
            self.reschedule(site.name, observation.retry_in)
        incident = observation.incident
        if incident is None:
            return
        if observation.needs_diagnosis:
            await self.diagnose_incident(site, incident.id, results)
        if observation.needs_verification and site.name not in self._verifying:
            self._verifying.add(site.name)  # one verification at a time per site (each asks the host)
            try:
                await self.verify(site.name, incident.id, Cause.PROBE, results=results)
            finally:
                self._verifying.discard(site.name)

    async def diagnose_incident(self, site: Site, incident_id: str, results: list[ProbeResult]) -> None:
        """On opening: a read-only diagnosis of the site's host, added to the card with the
        proposed actions as buttons (those [policy] auto_heal allows may run at once)."""
        if site.host is None:
            return
        try:
            await self.diagnose_site(site, site.host, incident_id, results, "certops")
        except HostActionError as exc:
            await asyncio.to_thread(
                self.incidents.record_diagnosis, incident_id, [f"Could not diagnose {site.host}: {exc.message}"]
            )

    async def diagnose_site(
        self, site: Site, host: str, incident_id: str | None, results: list[ProbeResult], requester: str
    ) -> tuple[Diagnosis, list[ActionRequest], list[RunResult]]:
        """Diagnoses the site's host (read-only) against what the wire served, proposes the fixes
        (pending requests, or runs that [policy] auto_heal allowed) and adds the diagnosis to the
        incident's card. Raises HostActionError when the host cannot be diagnosed."""
        facing = host_facing(results)
        found = await self.hosts.diagnose(host, facing[0] if facing else None)
        mine = tuple(f for f in found.findings if about_site(f, site))
        elsewhere = tuple(f for f in found.findings if not about_site(f, site))
        # the buttons first: the card edit that shows the diagnosis shows them too
        requests, ran = await self.propose(
            mine, host=host, site=site.name, incident_id=incident_id, requester=requester, beside=found.findings
        )
        host_incident = None
        if elsewhere:
            # not this site's: on the host's own card, so resolving the site's incident leaves them be
            opened = await asyncio.to_thread(self.incidents.observe_host, host, elsewhere, beside_site=True)
            host_incident = opened[0].id if opened[0] is not None else None
            more, more_ran = await self.propose(
                elsewhere, host=host, site=None, incident_id=host_incident, requester=requester, beside=found.findings
            )
            requests, ran = requests + more, ran + more_ran
        if incident_id is not None:
            lines = [finding_line(f) for f in mine] or [found.summary]
            await asyncio.to_thread(self.incidents.record_diagnosis, incident_id, lines)
        return Diagnosis(found.host, found.summary, mine, elsewhere, host_incident), requests, ran

    async def propose(
        self,
        findings: Sequence[FindingView],
        *,
        host: str,
        site: str | None,
        incident_id: str | None,
        requester: str,
        beside: Sequence[FindingView] = (),
    ) -> tuple[list[ActionRequest], list[RunResult]]:
        """Pending requests (buttons) for the findings' proposed actions, one per distinct action;
        those [policy] auto_heal allows run at once, but only when the diagnosis is unambiguous:
        every critical finding that proposes something proposes this same action (`beside`: the
        whole diagnosis these findings are part of, which counts for that too)."""
        critical = {(f.action, f.args) for f in (*findings, *beside) if f.action and f.severity == "critical"}
        requests: list[ActionRequest] = []
        ran: list[RunResult] = []
        seen: set[tuple[str, tuple[str, ...]]] = set()
        for finding in findings:
            if finding.action is None or (finding.action, finding.args) in seen:
                continue
            seen.add((finding.action, finding.args))
            request = await asyncio.to_thread(
                self.store.create_request,
                incident_id=incident_id,
                site=site,
                host=host,
                action=finding.action,
                args=finding.args,
                target=target_of(finding, host),
                requested_by=requester,
                ttl=self.config.policy.button_ttl,
            )
            auto = finding.action in self.config.policy.auto_heal
            if auto and critical <= {(finding.action, finding.args)}:
                result = await self.auto_run(request, requester)
                if result is not None:
                    ran.append(result)
                continue
            requests.append(request)
        return requests, ran

    async def auto_run(self, request: ActionRequest, requester: str) -> RunResult | None:
        subject = f"{request.action} {request.target} on {request.host}"
        if await asyncio.to_thread(self.store.start_request, request.token) != "started":
            await asyncio.to_thread(
                self.store.audit, "policy:auto_heal", "approve", subject, "refused", "the same action is running"
            )
            return None
        await asyncio.to_thread(
            self.store.audit, "policy:auto_heal", "approve", subject, "approved", f"requested by {requester}"
        )
        await self._step(request, Step.APPROVED, f"{subject}: allowed by [policy] auto_heal", "policy:auto_heal", False)
        return await self.run(request, "policy:auto_heal")

    async def _step(self, request: ActionRequest, step: Step, reason: str, actor: str, notable: bool) -> None:
        if request.incident_id:
            await asyncio.to_thread(
                self.incidents.note, request.incident_id, step, reason, actor, cause=Cause.ACTION, notable=notable
            )

    async def _stale(self, request: ActionRequest) -> str | None:
        """Why the proposal no longer fits the host, or None when it still does."""
        action = ACTIONS.get(request.action)
        if action is None or not action.rechecked:
            return None  # the host action itself checks its target against what the host reports
        probe = None
        site = self.config.site(request.site or "")
        if site is not None and request.action == "rebind":
            # a rebind may be proposed because of what the wire serves: look at the wire again too
            facing = host_facing(await self.prober.probe_site(site))
            probe = facing[0] if facing else None
        diagnosis = await self.hosts.diagnose(request.host, probe)
        if any((f.action, f.args) == (request.action, request.args) for f in diagnosis.findings):
            return None
        return f"The host changed since this was proposed: {request.action} {request.target} is no longer needed."

    async def verify(
        self,
        site_name: str,
        incident_id: str | None,
        cause: Cause,
        *,
        after: str | None = None,
        results: list[ProbeResult] | None = None,
    ) -> Verification:
        """Healthy only if every probe answered (warnings such as a CDN cache hit are not the
        incident), each probe of the host itself read a certificate, and the host agrees it is
        the newest one. Resolves `incident_id` when healthy."""
        site = self.config.site(site_name)
        if site is None:
            return Verification(False, (), False)
        if results is None:
            results = await self.prober.probe_site(site)
            if incident_id is not None:
                # the re-probe is a round of its own: it moves the thresholds like any other
                observation = await asyncio.to_thread(self.incidents.observe, site, results, actor="verification")
                if observation.retry_in is not None:
                    self.reschedule(site.name, observation.retry_in)
        lines = ["Re-probed from outside:", *(describe(r) for r in results)]
        if any(r.status.value not in ("ok", "warning") for r in results):
            return Verification(False, (*lines, "Not resolved: the site still fails from outside."), False)
        if site.host is not None:
            facing = host_facing(results)
            if not facing or any(r.certificate is None for r in facing):
                unknown = "Not resolved: no probe reached the host itself, so the certificate it serves is unknown."
                return Verification(False, (*lines, unknown), False)
            # each distinct certificate served (origins may be bound separately) must be the newest
            served = {r.certificate.sha1: r for r in facing if r.certificate is not None}
            for probe in served.values():
                try:
                    diagnosis = await self.hosts.diagnose(site.host, probe)
                except HostActionError as exc:
                    why = f"Not resolved: could not re-check {site.host}: {exc.message}"
                    return Verification(False, (*lines, why), False)
                stale = [f for f in diagnosis.findings if f.code == "served_not_newest"]
                if stale:
                    return Verification(False, (*lines, f"Not resolved: {stale[0].message}"), False)
        if incident_id is None:
            return Verification(True, tuple(lines), False)
        health = await asyncio.to_thread(self.store.site_health, site.name)
        if health.consecutive_failures:  # a newer round failed meanwhile: that one counts
            return Verification(False, (*lines, "Not resolved: a newer probe failed again."), False)
        if health.failing:
            more = site.success_threshold - health.consecutive_successes
            waiting = f"Not resolved yet: waiting for {more} more good probe(s) ([[sites]] success_threshold)."
            return Verification(True, (*lines, waiting), False)
        serving = host_facing(results)
        thumb = serving[0].certificate.sha1 if serving and serving[0].certificate else None
        incident = await asyncio.to_thread(self.store.incident, incident_id)
        acted = incident is not None and incident.acted_at is not None
        how = f"after {after}" if after else "after the action taken on it" if acted else "on its own, with no action"
        resolution = f"Healed {how}: verified from outside" + (f", serving {thumb}" if thumb else "") + "."
        resolved = await asyncio.to_thread(
            self.incidents.resolve, incident_id, resolution, cause, "certops", [describe(r) for r in results]
        )
        if resolved is not None:
            await asyncio.to_thread(self.store.audit, "certops", "resolve", incident_id, "done", resolution)
            lines.append(f"{incident_id} resolved: the newest certificate is served and the handshake works.")
        return Verification(True, tuple(lines), resolved is not None)
