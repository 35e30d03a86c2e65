"""Confirmation from other networks: which vantage points see a site failing, and whether that
is enough to count the round as failing (docs/agents.md).

A site is probed from each of its `vantage` points: "local" (the bot itself) and probe agents
(`certops agent`). Each vantage point's latest round is fresh for two of the site's intervals
plus its timeout; an older one (or none) is unknown. The round counts as failing only when at
least `confirm_from` vantage points see it failing. Pure decisions: no store, no clock of its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.config import Site
from bot.config.model import LOCAL
from bot.core.describe import failing
from bot.probe import ProbeResult
from bot.probe.certinfo import parse_iso_utc

FRESH_INTERVALS = 2  # a vantage point's round is fresh for this many intervals, plus the timeout


@dataclass(frozen=True)
class VantageResults:
    """The latest round one vantage point reported for a site, as the store keeps it."""

    site: str
    vantage: str
    received_at: dt.datetime
    results: tuple[ProbeResult, ...]


@dataclass(frozen=True)
class VantageView:
    name: str
    state: str  # "ok", "failing" or "unknown"
    results: tuple[ProbeResult, ...]
    since: dt.datetime | None  # when it last reported (None: never)
    what: str  # "OK", "origin unreachable", "has not reported since 06:00"
    pending: bool = False  # never reported, and the bot has not watched long enough to expect it


@dataclass(frozen=True)
class Verdict:
    """What the vantage points say about one round of a site."""

    site: str
    views: tuple[VantageView, ...]
    confirm_from: int

    @property
    def failing_views(self) -> tuple[VantageView, ...]:
        return tuple(v for v in self.views if v.state == "failing")

    @property
    def unknown_views(self) -> tuple[VantageView, ...]:
        return tuple(v for v in self.views if v.state == "unknown")

    @property
    def failing(self) -> bool:
        """The round counts as failing for the incident thresholds."""
        return len(self.failing_views) >= self.confirm_from

    @property
    def unconfirmable(self) -> bool:
        """Some see it failing and, with the silent ones, the quorum could be reached; without
        them it cannot: the site would go unwatched without saying so."""
        bad, unknown = len(self.failing_views), len(self.unknown_views)
        return 0 < bad < self.confirm_from <= bad + unknown

    @property
    def results(self) -> tuple[ProbeResult, ...]:
        """The results of the vantage points that see it failing (else every fresh one)."""
        views = self.failing_views or tuple(v for v in self.views if v.state == "ok")
        return tuple(r for v in views for r in v.results)

    @property
    def good_results(self) -> tuple[ProbeResult, ...]:
        """The results of the vantage points that see it healthy."""
        return tuple(r for v in self.views if v.state == "ok" for r in v.results)

    @property
    def settled(self) -> bool:
        """No vantage point is still expected to report for the first time."""
        return not any(v.pending for v in self.views)

    def line(self) -> str:
        """ "local: OK · tokyo: origin unreachable" """
        return " · ".join(f"{v.name}: {v.what}" for v in self.views)

    def note(self) -> str | None:
        """Why a failure does not page: "origin unreachable from tokyo only", or that the quorum
        cannot be reached; None when nothing fails or the failure is confirmed."""
        if self.unconfirmable:
            return self.quorum_problem()
        bad = self.failing_views
        if bad and not self.failing:
            names = " and ".join(v.name for v in bad)
            return f"{bad[0].what} from {names} only"
        return None

    def quorum_problem(self) -> str:
        silent = "; ".join(f"{v.name} {v.what}" for v in self.unknown_views)
        return f"quorum cannot be reached: {silent}"

    def details(self) -> tuple[str, ...]:
        lines = [f"Seen from: {self.line()}"]
        note = self.note()
        if note:
            lines.append(note)
        return tuple(lines)


def latest_rounds(
    site: Site, agents: Sequence[VantageResults], local: Sequence[ProbeResult] | None, now: dt.datetime | None = None
) -> dict[str, VantageResults]:
    """vantage -> its latest round: the agents' as stored, and the bot's own (`local`: its round
    just probed when `now` is given, else its latest stored round, as old as its oldest probe)."""
    latest = {v.vantage: v for v in agents if v.site == site.name and v.vantage != LOCAL}
    if LOCAL in site.vantage and local:
        if now is not None:
            at = now
        else:
            try:
                at = min(parse_iso_utc(r.checked_at) for r in local)
            except ValueError:
                return latest
        latest[LOCAL] = VantageResults(site.name, LOCAL, at, tuple(local))
    return latest


def judge(
    site: Site,
    latest: Mapping[str, VantageResults],
    now: dt.datetime,
    *,
    watching_since: dt.datetime | None = None,
) -> Verdict:
    """The verdict from each vantage point's latest round (`latest`: vantage -> results). A
    vantage point that never reported is unknown; `watching_since` (when the bot started) keeps
    it from counting as silent before it could have reported once."""
    fresh_for = dt.timedelta(seconds=FRESH_INTERVALS * site.interval + site.timeout)
    views = []
    for name in site.vantage:
        found = latest.get(name)
        if found is None or now - found.received_at > fresh_for:
            since = found.received_at if found is not None else None
            if since is None and watching_since is not None and now - watching_since <= fresh_for:
                views.append(VantageView(name, "unknown", (), None, "has not reported yet", pending=True))
                continue
            what = "has never reported" if since is None else f"has not reported since {since:%H:%M} UTC"
            views.append(VantageView(name, "unknown", (), since, what))
            continue
        results = found.results
        if any(failing(r) for r in results):
            views.append(VantageView(name, "failing", results, found.received_at, _what(site, results)))
        else:
            views.append(VantageView(name, "ok", results, found.received_at, "OK"))
    return Verdict(site.name, tuple(views), site.confirm_from)


def _what(site: Site, results: Sequence[ProbeResult]) -> str:
    """The failure in a few words: "origin unreachable", "site resets TLS handshakes"."""
    worst = next(r for r in results if failing(r))
    problem = next((p for p in worst.problems if p.severity.value == "critical"), None) or (
        worst.problems[0] if worst.problems else None
    )
    code = problem.code if problem is not None else "probe_error"
    place = "origin" if worst.target.via == "origin" else "site"
    phrase = next((words for prefix, words in _PHRASES if code.startswith(prefix)), code.replace("_", " "))
    return f"{place} {phrase}"


_PHRASES = (
    ("dns_error", "name does not resolve"),
    ("connect_", "unreachable"),
    ("network_unreachable", "unreachable"),
    ("host_unreachable", "unreachable"),
    ("tls_handshake_reset", "resets TLS handshakes"),
    ("tls_handshake_timeout", "TLS handshake times out"),
    ("tls_", "refuses TLS handshakes"),
    ("cert_expired", "serves an expired certificate"),
    ("cert_", "serves a certificate that fails checks"),
    ("http_timeout", "does not answer HTTP"),
    ("http_", "answers HTTP with an error"),
    ("keyword_missing", "page lacks its keyword"),
    ("probe_error", "could not be probed"),
    ("ca_file_unreadable", "could not be probed"),
)


def watched_from_elsewhere(site: Site) -> bool:
    """Whether the site needs the quorum: probed from an agent, or confirmed by more than one."""
    return site.vantage != (LOCAL,) or site.confirm_from != 1


def agent_subject(agent: str) -> str:
    """The subject of the incident an agent that stopped reporting opens."""
    return f"agent:{agent}"


def quorum_subject(site: str) -> str:
    """The subject of the warning that a site's quorum cannot be reached."""
    return f"quorum:{site}"
