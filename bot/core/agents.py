"""Probe agents at the bot: what each one is asked to probe, what it reports, the quorum of a
site watched from several networks, and the heartbeat of each agent (docs/agents.md).

A report arrives verified (bot.web_agents checks the signature) and parsed; everything here is
decisions on the store, in the calling thread.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.config.model import LOCAL, Agent, Config, Site
from bot.core.describe import span
from bot.core.incidents import IncidentCore, Observation
from bot.core.model import Cause, Incident, Severity
from bot.core.quorum import (
    Verdict,
    agent_subject,
    judge,
    latest_rounds,
    quorum_subject,
    watched_from_elsewhere,
)
from bot.probe import ProbeResult
from bot.probe.certinfo import parse_iso_utc

ACTOR = "probe agent"
SILENCE_FACTOR = 3  # an agent silent for this many of its report_interval is an incident


@dataclass(frozen=True)
class AgentRound:
    """One site's round of probes from one agent, as it posted them."""

    site: str
    results: tuple[ProbeResult, ...]


class AgentDesk:
    def __init__(self, incidents: IncidentCore) -> None:
        self.incidents = incidents
        self.store = incidents.store
        self.config: Config = incidents.config
        self.watching_since = incidents.clock()
        # the watcher's: run the site's round soon (an agent's results changed the verdict)
        self.reschedule: Callable[[str, float], None] = lambda site, seconds: None

    def sites_for(self, agent: str) -> list[Site]:
        """The sites whose vantage names the agent: its work."""
        return [s for s in self.config.sites if agent in s.vantage]

    def seen(self, agent: str) -> None:
        """The agent asked for its work or posted results: it is alive."""
        self.store.save_agent_report(agent, self.incidents.clock())
        for incident in self.store.open_incidents(agent_subject(agent)):
            self.incidents.resolve(incident.id, f"The probe agent {agent} reports again.", Cause.REPORT, ACTOR)

    def receive(self, agent: str, rounds: Sequence[AgentRound]) -> list[str]:
        """Keeps each site's round as the agent's latest; -> the sites whose verdict it changed
        (their round is run again soon, so the thresholds count it)."""
        now = self.incidents.clock()
        self.seen(agent)
        changed = []
        for found in rounds:
            site = self.config.site(found.site)
            if site is None or agent not in site.vantage:
                continue
            # buffered through an outage of the bot, a round is as old as its probes, not its post
            at = min(now, _probed_at(found.results, now))
            stored = next((v for v in self.store.vantage_results(site.name) if v.vantage == agent), None)
            if stored is not None and stored.received_at > at:
                continue  # a newer round of the site from this agent is kept already
            self.store.save_vantage_results(site.name, agent, at, found.results)
            verdict = self.verdict(site)
            health = self.store.site_health(site.name)
            quorum_open = bool(self.store.open_incidents(quorum_subject(site.name)))
            if verdict.failing != health.failing or (verdict.unconfirmable and verdict.settled) != quorum_open:
                changed.append(site.name)
        for name in changed:
            self.reschedule(name, 1.0)
        return changed

    # the quorum -----------------------------------------------------------------------------------

    def verdict(self, site: Site, local: Sequence[ProbeResult] | None = None) -> Verdict:
        """What every vantage point of the site sees now; `local`: the bot's round just probed
        (else its latest stored round)."""
        now = self.incidents.clock()
        stored = self.store.last_results(site.name) if local is None and LOCAL in site.vantage else local
        latest = latest_rounds(site, self.store.vantage_results(site.name), stored, now if local is not None else None)
        return judge(site, latest, now, watching_since=self.watching_since)

    def observe(self, site: Site, results: Sequence[ProbeResult]) -> tuple[Observation, list[ProbeResult]]:
        """The watcher's round of a site: its local probes (none when "local" is not among its
        vantage points) judged with every agent's latest round. -> (what the incident core
        decided, the results the follow-up should look at)."""
        if not watched_from_elsewhere(site):
            return self.incidents.observe(site, results), list(results)
        verdict = self.verdict(site, results)
        observation = self.incidents.observe(site, results, verdict=verdict)
        self._quorum(site, verdict)
        judged = verdict.results if verdict.failing else verdict.good_results
        return observation, list(judged)

    def _quorum(self, site: Site, verdict: Verdict) -> None:
        """One warning while the site's failure can be neither confirmed nor ruled out."""
        subject = quorum_subject(site.name)
        open_now = self.store.open_incidents(subject)
        now = self.incidents.clock()
        if verdict.unconfirmable and verdict.settled:
            if open_now or self.incidents.suppressed(site.name, now):
                return
            self.incidents.open(
                subject,
                "quorum_unreachable",
                Severity.WARNING,
                f"{site.name}: {verdict.quorum_problem()}",
                (
                    *verdict.details(),
                    f"confirm_from = {site.confirm_from} of {len(site.vantage)} vantage points; "
                    "start the silent agents again, or lower confirm_from",
                ),
                ACTOR,
            )
            return
        for incident in open_now:
            why = (
                f"The vantage points of {site.name} report again."
                if not verdict.unknown_views
                else f"No vantage point sees {site.name} failing any more."
            )
            self.incidents.resolve(incident.id, why, Cause.PROBE, ACTOR)

    # heartbeats -----------------------------------------------------------------------------------

    def check_heartbeats(self) -> list[Incident]:
        """Opens an incident for each agent that has reported before and has since been silent
        for three times its report_interval. -> the incidents opened now."""
        now = self.incidents.clock()
        last = self.store.agent_reports()
        opened = []
        for agent in self.config.agents:
            seen = last.get(agent.name)
            if seen is None or now - seen <= dt.timedelta(seconds=SILENCE_FACTOR * agent.report_interval):
                continue
            subject = agent_subject(agent.name)
            if self.store.open_incidents(subject):
                continue
            incident, fresh = self.incidents.open(
                subject,
                "agent_silent",
                Severity.WARNING,
                f"the probe agent {agent.name} has not reported since {seen:%H:%M} UTC",
                (
                    f"last report {seen:%Y-%m-%d %H:%M} UTC, {span(now - seen)} ago",
                    f"expected every {span(dt.timedelta(seconds=agent.report_interval))} (report_interval); "
                    f"check the certops agent --name {agent.name} service",
                    *self._sites_line(agent),
                ),
                ACTOR,
            )
            if fresh:
                opened.append(incident)
        return opened

    def _sites_line(self, agent: Agent) -> list[str]:
        sites = [s.name for s in self.sites_for(agent.name)]
        return [f"sites it probes: {', '.join(sites[:20])}" + (" …" if len(sites) > 20 else "")] if sites else []


def _probed_at(results: Sequence[ProbeResult], default: dt.datetime) -> dt.datetime:
    try:
        return min(parse_iso_utc(r.checked_at) for r in results)
    except ValueError:
        return default
