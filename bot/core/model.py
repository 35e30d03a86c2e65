"""The typed things the core decides about: incidents, action requests, outbox messages, and
the allowed moves between their states (with who may cause each).

Plain frozen data: the store returns these, the core returns these, `commands/` renders them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class Principal:
    """Who asked or pressed, as the chat platform told us."""

    platform: str  # "slack" | "line" | "console"
    user_id: str | None  # None when the platform did not say who it was (a LINE group press)
    display: str | None = None

    @property
    def key(self) -> str | None:
        """How policy names this person, e.g. "slack:U0123ABCD"; None when unknown."""
        return f"{self.platform}:{self.user_id}" if self.user_id else None

    def describe(self) -> str:
        return self.display or self.key or f"an unidentified {self.platform} user"


class IncidentState(StrEnum):
    OPEN = "open"
    ACKED = "acked"
    RESOLVED = "resolved"


class Cause(StrEnum):
    """Who or what moved an incident or a request."""

    PROBE = "probe"  # the scheduler's probes (or /ssl check|heal, which observe the same way)
    HOST_CHECK = "host_check"  # a scheduled read-only host diagnosis
    PERSON = "person"  # someone in chat: ack, approve, heal
    REPORT = "report"  # a host's own scripts reporting home (POST /api/report), or their silence
    POLICY = "policy"  # [policy] auto_heal
    ACTION = "action"  # a host action and the verification that follows it
    SYSTEM = "system"  # certops itself: start-up clean-up, a site removed from the config


class Step(StrEnum):
    """What happened, shown on the card's timeline (a transition may keep the state)."""

    DETECTED = "detected"
    DIAGNOSED = "diagnosed"
    APPROVED = "approved"
    RUNNING = "running"
    ACTED = "acted"
    VERIFIED = "verified"
    RESOLVED = "resolved"
    ACKED = "acked"
    ESCALATED = "escalated"  # severity rose
    UPDATED = "updated"  # what the probes see changed
    FLAPPING = "flapping"
    RENOTIFIED = "renotified"
    ANNOUNCED = "announced"  # posted after a mute or maintenance window ended


_VERIFIERS = frozenset({Cause.PROBE, Cause.ACTION, Cause.HOST_CHECK, Cause.SYSTEM, Cause.REPORT})
# (from, to) -> who may cause it; None as "from" is the opening
INCIDENT_MOVES: dict[tuple[IncidentState | None, IncidentState], frozenset[Cause]] = {
    (None, IncidentState.OPEN): frozenset({Cause.PROBE, Cause.HOST_CHECK, Cause.PERSON, Cause.REPORT}),
    (IncidentState.OPEN, IncidentState.OPEN): frozenset(Cause),
    (IncidentState.ACKED, IncidentState.ACKED): frozenset(Cause),
    (IncidentState.OPEN, IncidentState.ACKED): frozenset({Cause.PERSON}),
    # only a verification from outside resolves (after an action, or when the site healed by itself)
    (IncidentState.OPEN, IncidentState.RESOLVED): _VERIFIERS,
    (IncidentState.ACKED, IncidentState.RESOLVED): _VERIFIERS,
    # a closed incident keeps its state; only how an action on it ended is added to its timeline
    (IncidentState.RESOLVED, IncidentState.RESOLVED): frozenset({Cause.ACTION, Cause.SYSTEM}),
}


class TransitionRefused(Exception):
    """A move the state machine does not allow (e.g. a person resolving by hand)."""


def check_move(old: IncidentState | None, new: IncidentState, cause: Cause) -> None:
    allowed = INCIDENT_MOVES.get((old, new))
    if allowed is None or cause not in allowed:
        raise TransitionRefused(f"an incident cannot go from {old or 'nothing'} to {new} by {cause}")


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return 1 if self is Severity.WARNING else 2


@dataclass(frozen=True)
class Incident:
    id: str  # INC-0001
    subject: str  # the site's name, or "host:<name>" for a host's own finding
    problem: str  # root problem: a probe problem code, a host finding code, or "flapping"
    severity: Severity
    state: IncidentState
    summary: str  # one sentence: what is wrong
    details: tuple[str, ...]  # what the probes (edge and origin together) and the host show
    opened_at: dt.datetime
    updated_at: dt.datetime
    site: str | None = None
    host: str | None = None
    acked_by: str | None = None
    failing_since: dt.datetime | None = None  # the first failed probe of the run that opened it
    acted_at: dt.datetime | None = None  # the first host action run on it
    resolved_at: dt.datetime | None = None
    resolution: str | None = None  # how it ended, in a sentence
    announced: bool = False  # a card was queued (not while muted or in maintenance)
    notified_at: dt.datetime | None = None  # the last new message (card or re-notification)
    notified_severity: Severity | None = None
    diagnosis: tuple[str, ...] = ()  # the host's findings, one line each

    @property
    def is_open(self) -> bool:
        return self.state is not IncidentState.RESOLVED


@dataclass(frozen=True)
class Transition:
    incident_id: str
    seq: int
    at: dt.datetime
    old_state: IncidentState | None
    new_state: IncidentState
    step: Step
    reason: str
    actor: str


class RequestState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    REFUSED = "refused"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"
    STALE = "stale"


REQUEST_MOVES: dict[RequestState, frozenset[RequestState]] = {
    RequestState.PENDING: frozenset(
        {RequestState.RUNNING, RequestState.EXPIRED, RequestState.SUPERSEDED, RequestState.REFUSED}
    ),
    RequestState.RUNNING: frozenset({RequestState.DONE, RequestState.FAILED, RequestState.STALE}),
}


@dataclass(frozen=True)
class ActionRequest:
    token: str
    incident_id: str | None
    site: str | None
    host: str
    action: str
    args: tuple[str, ...]  # positional, as `certops host ACTION HOST ARGS...` takes them
    target: str  # a readable summary of what the action acts on
    state: RequestState
    requested_by: str
    created_at: str
    expires_at: str
    result: str | None


class MessageKind(StrEnum):
    CARD = "card"  # bring an incident's card up to date: post it the first time, edit it after
    RENOTIFY = "renotify"  # a new message about an open incident (thread reply, push)
    DIGEST = "digest"
    NOTICE = "notice"  # a one-off message (a host that healed itself, a window that ended)


class MessageState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # a permanent error: recorded, not retried
    SUPERSEDED = "superseded"  # a newer edit of the same card was delivered instead


@dataclass(frozen=True)
class NewMessage:
    """An outbox row to write in the same transaction as the transition that causes it."""

    platform: str
    kind: MessageKind
    incident_id: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)  # data for the renderer, JSON-ready


@dataclass(frozen=True)
class OutboxMessage:
    seq: int
    platform: str
    kind: MessageKind
    incident_id: str | None
    payload: dict[str, Any]
    state: MessageState
    attempts: int
    created_at: dt.datetime
    next_attempt_at: dt.datetime
    retry_key: str  # the same on every attempt: LINE delivers a retried push once
    last_error: str | None = None
    sent_at: dt.datetime | None = None
    tried_at: dt.datetime | None = None  # when an attempt first began (it may have landed unanswered)


@dataclass(frozen=True)
class SiteHealth:
    """What the probe history says about a site, for thresholds and flapping."""

    site: str
    failing: bool = False  # the last confirmed state (after the thresholds)
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    first_failure_at: dt.datetime | None = None  # of the current run of failures
    flips: tuple[dt.datetime, ...] = ()  # confirmed changes between failing and healthy, last hour
    last_checked_at: dt.datetime | None = None


def report_subject(host: str, kind: str) -> str:
    """The subject of the incident a failed report of that kind opens ("self-heal", "post-renew")."""
    return f"report:{host}:{kind}"


def silent_subject(host: str) -> str:
    """The subject of the incident a silent self-heal task opens."""
    return f"silent:{host}"


def report_subjects(host: str) -> tuple[str, ...]:
    """Every subject a host's reports can open an incident on, besides the host's own."""
    return (report_subject(host, "self-heal"), report_subject(host, "post-renew"), silent_subject(host))


@dataclass(frozen=True)
class HostReport:
    """The latest report one of a host's own scripts sent (POST /api/report), as the store keeps it."""

    host: str
    kind: str  # "self-heal" or "post-renew"
    received_at: dt.datetime
    ok: bool
    report: dict[str, Any]  # bot.reports.model.Report.to_json()


@dataclass(frozen=True)
class Lease:
    """Who leads the replicas on one database, in which term, until when."""

    holder: str
    term: int
    expires_at: dt.datetime


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: str
    actor: str
    event: str
    subject: str
    outcome: str
    detail: str
