"""What the core needs from storage, one small port per aggregate.

`bot/store` implements all of them on SQLAlchemy Core (SQLite by default); the contract suite in
`tests/store/` is what any backend must pass. Every call is synchronous and may block: callers on
the event loop run them in a thread (`asyncio.to_thread`).

Times are timezone-aware UTC datetimes. Every state change that must happen once is a
compare-and-set guarded by the state it expects, so a restart, a retried request or a second
replica never does it twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from bot.core.model import (
    ActionRequest,
    AuditEntry,
    HostReport,
    Incident,
    IncidentState,
    Lease,
    NewMessage,
    OutboxMessage,
    RequestState,
    SiteHealth,
    Step,
    Transition,
)
from bot.core.quorum import VantageResults
from bot.probe import ProbeResult


class StoreRefused(Exception):
    """The store could not write (a full disk, a read-only or damaged file). Raised by any store
    backend; `reason` is a short phrase for chat ("the disk is full"). Other exceptions from a
    store are certops's own faults."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ResultsPort(Protocol):
    def save_results(self, site: str, results: Sequence[ProbeResult]) -> None:
        """Replaces the site's latest results (one per path probed: public, each origin)."""

    def last_results(self, site: str | None = None) -> list[ProbeResult]:
        """The latest results of one site, or of all (ordered by site, public before origin)."""

    def site_health(self, site: str) -> SiteHealth:
        """A site never seen returns SiteHealth(site) with its defaults."""

    def record_round(
        self, site: str, results: Sequence[ProbeResult], count: Callable[[SiteHealth], SiteHealth]
    ) -> tuple[SiteHealth, SiteHealth]:
        """save_results, then the site's health read, counted and saved, as one transaction;
        -> (before, after). `count` runs inside it: pure and quick."""

    def ask_probe_soon(self, site: str, due_at: dt.datetime) -> None:
        """A replica that does not lead asks the leader for a round of `site` by `due_at` (the
        sooner of two asks is kept)."""

    def take_probe_soon(self) -> dict[str, dt.datetime]:
        """The asks so far, each handed out once: site -> when it is due."""


class IncidentsPort(Protocol):
    def open_incident(
        self,
        *,
        subject: str,
        problem: str,
        fields: dict[str, Any],
        at: dt.datetime,
        reason: str,
        actor: str,
        messages: Sequence[NewMessage] = (),
    ) -> tuple[Incident, bool]:
        """The open incident for `subject` (whatever its problem), or a new one built from
        `fields` (any Incident field but id, subject, problem, state, opened_at, updated_at).
        -> (incident, created). The opening transition (None -> open, step detected) and the
        messages are written in the same transaction, and only when it was created."""

    def transition(
        self,
        incident_id: str,
        *,
        expected: Sequence[IncidentState],
        new: IncidentState,
        step: Step,
        reason: str,
        actor: str,
        at: dt.datetime,
        changes: dict[str, Any] | None = None,
        messages: Sequence[NewMessage] = (),
    ) -> Incident | None:
        """Compare-and-set: moves the incident to `new` (applying `changes` to its fields, and
        setting updated_at, plus resolved_at when it resolves) only if its state is one of
        `expected`; writes the transition row and the messages in the same transaction.
        None when the incident is not in an expected state (someone else got there first)."""

    def incident(self, incident_id: str) -> Incident | None:
        """Case-insensitive id."""

    def open_incidents(self, subject: str | None = None) -> list[Incident]:
        """Oldest first."""

    def incidents(self, *, since: dt.datetime | None = None, limit: int = 100) -> list[Incident]:
        """The newest first, resolved ones included."""

    def transitions(self, incident_id: str) -> list[Transition]:
        """In the order they happened."""


class RequestsPort(Protocol):
    def create_request(
        self,
        *,
        incident_id: str | None,
        site: str | None,
        host: str,
        action: str,
        args: tuple[str, ...],
        target: str,
        requested_by: str,
        ttl: float,
    ) -> ActionRequest:
        """A new pending request; a pending one for exactly the same thing is superseded, unless
        the store's supersede rule (`may_supersede(requested_by, action)`, wired by bot.app)
        refuses this requester: then the pending, unexpired request is returned instead."""

    def request(self, token: str) -> ActionRequest | None: ...

    def requests_for(self, incident_id: str) -> list[ActionRequest]:
        """Oldest first."""

    def add_approval(self, token: str, principal: str) -> list[str]:
        """Records one approval (once per person); returns everyone who approved so far."""

    def start_request(self, token: str) -> str:
        """pending -> running unless an identical action (flags aside) is running on the host:
        "started", "busy" or "taken"."""

    def claim_request(
        self, token: str, expected: RequestState, new: RequestState, result: str | None = None
    ) -> bool: ...

    def fail_interrupted(self) -> list[ActionRequest]:
        """At start: requests left running by a previous process become failed ("interrupted…")."""


class AuditPort(Protocol):
    def audit(self, actor: str, event: str, subject: str, outcome: str, detail: str = "") -> None: ...

    def audit_log(self, limit: int = 100) -> list[AuditEntry]:
        """Oldest first, the last `limit` entries."""


class OutboxPort(Protocol):
    def enqueue(self, messages: Sequence[NewMessage], at: dt.datetime) -> None:
        """For messages no transition causes (the digest)."""

    def next_due(self, platform: str, now: dt.datetime) -> OutboxMessage | None:
        """The platform's oldest pending message, if its next attempt is due: delivery is in
        order, so a message waiting for a retry holds back the ones behind it."""

    def pending(self, platform: str | None = None) -> list[OutboxMessage]:
        """Oldest first."""

    def pending_cards(self, platform: str, incident_id: str) -> list[OutboxMessage]:
        """The pending CARD messages of one card, oldest first."""

    def pending_count(self, platform: str | None = None) -> int: ...

    def mark_sent(self, seq: int, at: dt.datetime) -> bool:
        """pending -> sent; False if it was not pending."""

    def mark_tried(self, seq: int, at: dt.datetime) -> None:
        """Notes when the first attempt began (kept on later ones), before the platform is called."""

    def mark_retry(self, seq: int, error: str, next_attempt_at: dt.datetime) -> None:
        """Counts an attempt and sets when to try again."""

    def mark_failed(self, seq: int, error: str, at: dt.datetime) -> None:
        """pending -> failed: a permanent error, not retried."""

    def supersede(self, platform: str, incident_id: str, before_seq: int) -> int:
        """Older pending CARD messages of the same card become superseded (the newest edit
        carries the whole card); returns how many."""

    def failed_count(self) -> int: ...

    def card_ref(self, incident_id: str, platform: str) -> str | None:
        """Where the card was posted (Slack "channel:ts", a LINE message id)."""

    def save_card_ref(self, incident_id: str, platform: str, ref: str) -> None: ...


class EventsPort(Protocol):
    def first_time(self, platform: str, event_id: str) -> bool:
        """True the first time an event id is seen: a redelivered or replayed event gives False."""

    def prune_seen_events(self, older_than_days: int = 30) -> int: ...

    def prune_signatures(self, platforms: tuple[str, ...], older_than: float) -> int: ...

    def mute(self, site: str, until: dt.datetime, by: str) -> None: ...

    def muted_until(self, site: str) -> dt.datetime | None:
        """The stored end of the site's last mute, or None; the caller compares it with its clock."""


class ReportsPort(Protocol):
    def save_report(self, host: str, kind: str, received_at: dt.datetime, ok: bool, report: dict[str, Any]) -> None:
        """Keeps it as the host's latest report of that kind."""

    def host_reports(self, host: str | None = None) -> list[HostReport]:
        """The latest report of each (host, kind), of one host or of all, by host and kind."""


class LeasePort(Protocol):
    def claim_lease(self, holder: str, now: dt.datetime, ttl: float) -> Lease | None:
        """Takes or renews the leader lease; None while another replica holds it."""

    def release_lease(self, holder: str, now: dt.datetime) -> None: ...

    def touch_replica(self, holder: str, now: dt.datetime) -> None: ...

    def lease(self) -> Lease | None: ...


class VantagePort(Protocol):
    def save_vantage_results(
        self, site: str, vantage: str, received_at: dt.datetime, results: Sequence[ProbeResult]
    ) -> None:
        """Keeps them as the agent's latest round of the site."""

    def vantage_results(self, site: str | None = None) -> list[VantageResults]:
        """The latest round of each (site, agent), of one site or of all, by site and agent."""

    def save_agent_report(self, agent: str, received_at: dt.datetime) -> None: ...

    def agent_reports(self) -> dict[str, dt.datetime]:
        """When each agent last reported results."""


class StorePort(
    ResultsPort,
    IncidentsPort,
    RequestsPort,
    AuditPort,
    OutboxPort,
    EventsPort,
    ReportsPort,
    LeasePort,
    VantagePort,
    Protocol,
):
    """Everything at once, as one backend implements it."""

    def close(self) -> None: ...
