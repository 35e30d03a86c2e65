"""The incident state machine at work: what a round of probes, a diagnosis, an action or the
passing of time does to a site's incident, and which chat messages that causes.

Every method takes data and returns data; each change is one stored transition with its outbox
messages written in the same transaction. The store calls block, so the async callers
(scheduler, commands) run these methods in a thread.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from bot.config import Config, Site
from bot.core.describe import describe, failing, finding_line, headline, span
from bot.core.model import (
    Cause,
    Incident,
    IncidentState,
    MessageKind,
    NewMessage,
    Severity,
    SiteHealth,
    Step,
    check_move,
    report_subjects,
)
from bot.core.ports import StorePort
from bot.core.quorum import Verdict, agent_subject, quorum_subject
from bot.core.services import FindingView
from bot.probe import ProbeResult, Status

Clock = Callable[[], dt.datetime]
FLAP_WINDOW = dt.timedelta(hours=1)
OPEN_STATES = (IncidentState.OPEN, IncidentState.ACKED)
FLAPPING = "flapping"
# host findings that are not critical but still need someone to act
NEEDS_A_PERSON = frozenset(
    {"renewal_failing", "renewal_overdue", "legacy_task_failing", "wacs_task_missing_or_disabled"}
)


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Observation:
    """What observe() decided, for the caller to act on."""

    site: str
    failing: bool  # this round failed
    confirmed: bool  # the failure (or recovery) passed its threshold
    incident: Incident | None  # the site's open incident after this round, if any
    opened: bool = False
    retry_in: float | None = None  # probe again this soon instead of a whole interval later
    needs_diagnosis: bool = False  # a new incident on a site with a host: diagnose it (read-only)
    needs_verification: bool = False  # recovered: verify against the host, then resolve


class IncidentCore:
    def __init__(
        self,
        store: StorePort,
        config: Config,
        *,
        platforms: Callable[[], Sequence[str]] = tuple,
        clock: Clock = system_clock,
        on_message: Callable[[], None] = lambda: None,
    ) -> None:
        """`platforms`: the chat platforms cards go to (asked at each message, so an adapter
        attached later, like the console, gets them too). `on_message`: wakes the outbox."""
        self.store = store
        self.config = config
        self.platforms = platforms
        self.clock = clock
        self.on_message = on_message
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # messages ---------------------------------------------------------------------------------

    def _fan_out(self, kind: MessageKind, incident_id: str | None, **payload: object) -> list[NewMessage]:
        return [NewMessage(p, kind, incident_id, dict(payload)) for p in self.platforms()]

    def _card(self, incident_id: str, *, notable: bool) -> list[NewMessage]:
        return self._fan_out(MessageKind.CARD, incident_id, notable=notable)

    def _move(
        self,
        incident: Incident,
        new: IncidentState,
        step: Step,
        reason: str,
        cause: Cause,
        actor: str,
        *,
        at: dt.datetime,
        changes: dict[str, object] | None = None,
        messages: Sequence[NewMessage] = (),
        expected: Sequence[IncidentState] = OPEN_STATES,
    ) -> Incident | None:
        keeps = new is incident.state
        for _attempt in range(3):
            check_move(incident.state, new, cause)
            # a card nobody has seen (muted, in maintenance) is not edited: it is announced later
            sent = [m for m in messages if incident.announced or m.kind is not MessageKind.CARD]
            moved = self.store.transition(
                incident.id,
                # a step that keeps the state must keep the state it finds: an ack that landed
                # since `incident` was read is not undone by an update of what the probes see
                expected=(incident.state,) if keeps else expected,
                new=new,
                step=step,
                reason=reason,
                actor=actor,
                at=at,
                changes=changes,
                messages=sent,
            )
            if moved is not None:
                if sent:
                    self.on_message()
                return moved
            latest = self.store.incident(incident.id)
            if not keeps or latest is None or not latest.is_open or latest.state is incident.state:
                return None
            incident, new = latest, latest.state
        return None

    # suppression --------------------------------------------------------------------------------

    def suppressed(self, site: str | None, now: dt.datetime) -> str | None:
        """Why alerts for the site are held back now (a mute, a maintenance window), or None."""
        if site is None:
            return None
        until = self.muted_until(site)
        if until is not None:
            return f"muted until {until:%Y-%m-%d %H:%M} UTC"
        window = self.config.in_maintenance(site, now)
        return f"in maintenance ({window.reason})" if window is not None else None

    def muted_until(self, site: str) -> dt.datetime | None:
        """The end of the site's mute while it is in force, else None."""
        until = self.store.muted_until(site)
        return until if until is not None and until > self.clock() else None

    # probes ---------------------------------------------------------------------------------------

    def observe(
        self,
        site: Site,
        results: Sequence[ProbeResult],
        *,
        actor: str = "scheduler",
        confirmed: bool = False,
        verdict: Verdict | None = None,
    ) -> Observation:
        """One round of probes of a site (the scheduler's, or /ssl check|heal's): the thresholds,
        flapping, and opening, escalating or recovering the site's incident. `confirmed`: a
        person asked (/ssl heal), so a failing round needs no second one to count. `verdict`:
        what every vantage point of the site sees (bot.core.quorum); the round fails only when
        enough of them see it failing, and the card says which."""
        # one round at a time per site: the health is read, counted and written back
        with self._site_lock(site.name):
            return self._observe(site, list(results), actor, confirmed, verdict)

    def _site_lock(self, site: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(site, threading.Lock())

    def _observe(
        self, site: Site, results: list[ProbeResult], actor: str, confirmed: bool, verdict: Verdict | None = None
    ) -> Observation:
        now = self.clock()
        bad = any(failing(r) for r in results) if verdict is None else verdict.failing

        def counted(before: SiteHealth) -> SiteHealth:
            health = _count(before, bad, now)
            if bad and not before.failing and (confirmed or health.consecutive_failures >= site.failure_threshold):
                health = replace(health, failing=True)
            elif not bad and before.failing and health.consecutive_successes >= site.success_threshold:
                health = replace(health, failing=False, first_failure_at=None)
            if health.failing != before.failing:
                health = replace(health, flips=(*health.flips, now))
            return health

        before, health = self.store.record_round(site.name, results, counted)
        flipped = health.failing != before.failing
        incident = next(iter(self.store.open_incidents(site.name)), None)
        retry = site.retry_interval

        if bad and not health.failing:  # not confirmed yet: look again soon
            return Observation(site.name, True, False, incident, retry_in=retry)
        if bad and verdict is not None:
            return self._failing(site, list(verdict.results), health, incident, actor, verdict.details())
        if bad:
            return self._failing(site, results, health, incident, actor)
        if incident is None:
            return Observation(site.name, False, not before.failing or flipped, incident)
        if health.failing:  # recovering, not confirmed yet
            return Observation(site.name, False, False, incident, retry_in=retry)
        if incident.problem == FLAPPING and health.flips:
            return Observation(site.name, False, True, incident)  # stable for a whole hour first
        if incident.problem != FLAPPING and len(health.flips) > self.config.bot.flap_limit:
            flapping = self._move(
                incident,
                incident.state,
                Step.FLAPPING,
                f"changed state {len(health.flips)} times in the last hour",
                Cause.PROBE,
                actor,
                at=now,
                changes={
                    "problem": FLAPPING,
                    "summary": f"{site.name} is flapping: {len(health.flips)} changes in an hour",
                },
                messages=self._card(incident.id, notable=True),
            )
            return Observation(site.name, False, True, flapping or incident)
        return Observation(site.name, False, True, incident, needs_verification=True)

    def _failing(
        self,
        site: Site,
        results: list[ProbeResult],
        health: SiteHealth,
        incident: Incident | None,
        actor: str,
        seen_from: tuple[str, ...] = (),
    ) -> Observation:
        now = self.clock()
        problem, summary = headline(site.name, results)
        details = (*seen_from, *(describe(r) for r in results))
        # a round where only certops's own probe failed (unknown) is less certain than a real failure:
        # it opens as a warning, and a real failure afterwards raises it (and re-notifies)
        certain = any(r.status is Status.CRITICAL for r in results)
        severity = Severity.CRITICAL if certain else Severity.WARNING
        if incident is None:
            if len(health.flips) > self.config.bot.flap_limit:
                problem, summary = FLAPPING, f"{site.name} is flapping: {len(health.flips)} changes in an hour"
            created, fresh = self.open(
                site.name,
                problem,
                severity,
                summary,
                details,
                actor,
                site=site.name,
                host=site.host,
                failing_since=health.first_failure_at,
                suppressed=self.suppressed(site.name, now),
            )
            return Observation(
                site.name, True, True, created, opened=fresh, needs_diagnosis=fresh and site.host is not None
            )
        changes: dict[str, object] = {}
        if details != incident.details:
            changes["details"] = details
        if summary != incident.summary and incident.problem != FLAPPING:
            changes["summary"] = summary
        if problem != incident.problem and incident.problem != FLAPPING:
            changes["problem"] = problem  # the root problem changed (e.g. a probe error turned into a reset)
        revised = self.revise(incident, severity, changes, summary, Cause.PROBE, actor)
        return Observation(site.name, True, True, revised)

    def open(
        self,
        subject: str,
        problem: str,
        severity: Severity,
        summary: str,
        details: tuple[str, ...],
        actor: str,
        *,
        site: str | None = None,
        host: str | None = None,
        failing_since: dt.datetime | None = None,
        suppressed: str | None = None,
    ) -> tuple[Incident, bool]:
        """The subject's open incident, or a new one with its card queued (unless alerts are
        held back: then it is announced when the window ends)."""
        now = self.clock()
        announced = suppressed is None
        incident, fresh = self.store.open_incident(
            subject=subject,
            problem=problem,
            fields={
                "severity": severity,
                "summary": summary,
                "details": details,
                "site": site,
                "host": host,
                "failing_since": failing_since,
                "announced": announced,
                "notified_at": now if announced else None,
                "notified_severity": severity if announced else None,
            },
            at=now,
            reason=summary + ("" if announced else f" (alerts held back: {suppressed})"),
            actor=actor,
            # the id is not known before the row exists: the store fills it in for these
            messages=self._fan_out(MessageKind.CARD, None, notable=True) if announced else [],
        )
        if fresh and announced:
            self.on_message()
        return incident, fresh

    def revise(
        self,
        incident: Incident,
        severity: Severity,
        changes: dict[str, object],
        reason: str,
        cause: Cause,
        actor: str,
    ) -> Incident:
        """What the probes or the host check see now: a minor card edit, or, when the severity
        rose, an escalation with a re-notification."""
        rose = severity.rank > incident.severity.rank
        if severity is not incident.severity:
            changes = {**changes, "severity": severity}
        if not changes:
            return incident
        now = self.clock()
        if rose:
            changes = {**changes, "notified_at": now, "notified_severity": severity}
        moved = self._move(
            incident,
            incident.state,
            Step.ESCALATED if rose else Step.UPDATED,
            f"severity rose to {severity}" if rose else reason,
            cause,
            actor,
            at=now,
            changes=changes,
            messages=[
                *self._card(incident.id, notable=rose),
                *(self._fan_out(MessageKind.RENOTIFY, incident.id) if rose else []),
            ],
        )
        return moved or incident

    # hosts ----------------------------------------------------------------------------------------

    def observe_host(
        self, host: str, findings: Sequence[FindingView], *, beside_site: bool = False
    ) -> tuple[Incident | None, bool]:
        """A scheduled read-only diagnosis of a host: findings that need a person (critical ones,
        a failing or overdue renewal, a failing legacy task) open or update the host's incident;
        when none is left, the host's incident resolves. -> (the open incident, opened now).

        `beside_site`: the findings a site's diagnosis found that are not the site's (a legacy
        task, another site's renewal). They get the host's card even while the site has one, and,
        being only part of the host's picture, never resolve it."""
        subject = f"host:{host}"
        serious = [f for f in findings if f.severity == "critical" or f.code in NEEDS_A_PERSON]
        incident = next(iter(self.store.open_incidents(subject)), None)
        if beside_site and not serious:
            return incident, False
        if incident is None and not beside_site and any(i.host == host and i.site for i in self.store.open_incidents()):
            # a site on this host has an open incident: its card has the host's diagnosis and
            # buttons already, a second card for the same root problem would only be noise
            return None, False
        if not serious:
            if incident is not None:
                self.resolve(incident.id, f"The scheduled check of {host} no longer finds it.", Cause.HOST_CHECK)
            return None, False
        worst = next((f for f in serious if f.severity == "critical"), serious[0])
        severity = Severity.CRITICAL if worst.severity == "critical" else Severity.WARNING
        summary = f"{host}: {worst.message}" + (f" (and {len(serious) - 1} more)" if len(serious) > 1 else "")
        details = tuple(finding_line(f) for f in serious)
        if incident is None:
            return self.open(subject, worst.code, severity, summary, details, "host check", host=host)
        changes: dict[str, object] = {"details": details, "summary": summary} if details != incident.details else {}
        return self.revise(incident, severity, changes, summary, Cause.HOST_CHECK, "host check"), False

    # what people and host actions do -----------------------------------------------------------

    def record_diagnosis(self, incident_id: str, lines: Sequence[str], actor: str = "certops") -> Incident | None:
        incident = self.store.incident(incident_id)
        if incident is None or not incident.is_open:
            return incident
        return self._move(
            incident,
            incident.state,
            Step.DIAGNOSED,
            f"{incident.host or 'the host'} diagnosed: {len(lines)} finding(s)",
            Cause.HOST_CHECK,
            actor,
            at=self.clock(),
            changes={"diagnosis": tuple(lines)},
            messages=self._card(incident.id, notable=True),
        )

    def note(self, incident_id: str, step: Step, reason: str, actor: str, *, cause: Cause, notable: bool) -> None:
        """A step on an incident's timeline that keeps its state (approved, running, acted). How an
        action ended (ACTED) is noted on a closed incident too: its card must not go on saying
        the action runs when the incident resolved while it did."""
        incident = self.store.incident(incident_id)
        if incident is None or (not incident.is_open and step is not Step.ACTED):
            return
        changes: dict[str, object] = {}
        if step is Step.ACTED and incident.acted_at is None:
            changes["acted_at"] = self.clock()
        self._move(
            incident,
            incident.state,
            step,
            reason,
            cause,
            actor,
            at=self.clock(),
            changes=changes,
            messages=self._card(incident.id, notable=notable),
            expected=OPEN_STATES if incident.is_open else (incident.state,),
        )

    def ack(self, incident_id: str, who: str) -> tuple[Incident | None, str | None]:
        """-> (the incident, None) when acknowledged now; (incident or None, why not) otherwise."""
        incident = self.store.incident(incident_id)
        if incident is None:
            return None, "unknown"
        if incident.state is not IncidentState.OPEN:
            return incident, f"already {incident.state}"
        moved = self._move(
            incident,
            IncidentState.ACKED,
            Step.ACKED,
            f"acknowledged by {who}",
            Cause.PERSON,
            who,
            at=self.clock(),
            changes={"acked_by": who},
            messages=self._card(incident.id, notable=False),
            expected=(IncidentState.OPEN,),
        )
        if moved is None:
            latest = self.store.incident(incident_id) or incident
            return latest, f"already {latest.state}"
        return moved, None

    def resolve(
        self,
        incident_id: str,
        resolution: str,
        cause: Cause,
        actor: str = "certops",
        details: Sequence[str] | None = None,
    ) -> Incident | None:
        """Closes an open incident after a verification from outside; None if it was not open.
        `details`: what the verifying probes saw, shown on the closed card instead of the failure."""
        incident = self.store.incident(incident_id)
        if incident is None or not incident.is_open:
            return None
        return self._move(
            incident,
            IncidentState.RESOLVED,
            Step.RESOLVED,
            resolution,
            cause,
            actor,
            at=self.clock(),
            changes={"resolution": resolution, **({"details": tuple(details)} if details is not None else {})},
            messages=self._card(incident.id, notable=True),
        )

    def reconcile(self) -> list[Incident]:
        """At start: incidents of sites and hosts no longer in the config are closed (nothing
        would ever probe or check them again), and say why."""
        sites = {s.name for s in self.config.sites}
        hosts = {f"host:{h.name}" for h in self.config.hosts}
        hosts |= {subject for h in self.config.hosts for subject in report_subjects(h.name)}
        hosts |= {agent_subject(a.name) for a in self.config.agents} | {quorum_subject(s) for s in sites}
        closed = []
        for incident in self.store.open_incidents():
            if incident.subject in sites or incident.subject in hosts:
                continue
            what = incident.host or incident.subject.removeprefix("host:")
            done = self.resolve(
                incident.id, f"Closed without verification: {what} is no longer in the config.", Cause.SYSTEM
            )
            if done is not None:
                closed.append(done)
        return closed

    # the passing of time ------------------------------------------------------------------------

    def tick(self) -> int:
        """Announces incidents whose mute or maintenance window ended, and re-notifies open,
        unacknowledged ones every [bot] renotify. Returns how many messages it queued."""
        now = self.clock()
        queued = 0
        renotify = self.config.bot.renotify
        for incident in self.store.open_incidents():
            if self.suppressed(incident.site, now):
                continue
            if not incident.announced:
                moved = self.store.transition(
                    incident.id,
                    expected=OPEN_STATES,
                    new=incident.state,
                    step=Step.ANNOUNCED,
                    reason="alerts were held back; announced now that the window has ended",
                    actor="scheduler",
                    at=now,
                    changes={"announced": True, "notified_at": now, "notified_severity": incident.severity},
                    messages=self._card(incident.id, notable=True),
                )
                queued += moved is not None
                continue
            due = incident.notified_at is None or (
                renotify is not None and incident.notified_at + dt.timedelta(seconds=renotify) <= now
            )
            if incident.state is IncidentState.OPEN and renotify is not None and due:
                moved = self._move(
                    incident,
                    incident.state,
                    Step.RENOTIFIED,
                    f"still open and not acknowledged after {span(now - incident.opened_at)}",
                    Cause.SYSTEM,
                    "scheduler",
                    at=now,
                    changes={"notified_at": now},
                    messages=self._fan_out(MessageKind.RENOTIFY, incident.id),
                    expected=(IncidentState.OPEN,),
                )
                queued += moved is not None
        if queued:
            self.on_message()
        return queued

    def digest(self) -> int:
        """Queues the daily digest for every chat; the renderer reads the current state."""
        messages = self._fan_out(MessageKind.DIGEST, None)
        if messages:
            self.store.enqueue(messages, self.clock())
            self.on_message()
        return len(messages)


def _count(before: SiteHealth, bad: bool, now: dt.datetime) -> SiteHealth:
    recent = tuple(f for f in before.flips if f > now - FLAP_WINDOW)
    if bad:
        return replace(
            before,
            consecutive_failures=before.consecutive_failures + 1,
            consecutive_successes=0,
            first_failure_at=before.first_failure_at or now,
            flips=recent,
            last_checked_at=now,
        )
    return replace(
        before,
        consecutive_failures=0,
        consecutive_successes=before.consecutive_successes + 1,
        first_failure_at=before.first_failure_at if before.failing else None,
        flips=recent,
        last_checked_at=now,
    )
