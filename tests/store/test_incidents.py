"""Incidents: one open per subject, compare-and-set moves, transitions and the messages they cause."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.exc import StatementError

from bot.core.model import IncidentState, MessageKind, NewMessage, Severity, Step
from bot.store import SqlStore
from tests.store.helpers import T0, minutes, open_one, race

OPEN, ACKED, RESOLVED = IncidentState.OPEN, IncidentState.ACKED, IncidentState.RESOLVED


def test_a_new_incident_gets_the_next_id_and_its_fields_typed(store: SqlStore) -> None:
    incident, created = store.open_incident(
        subject="www",
        problem="cert_expired",
        fields={
            "severity": Severity.CRITICAL,
            "summary": "the certificate expired",
            "details": ["edge: expired 2 days ago", "origin iis01: expired 2 days ago"],
            "site": "www",
            "host": "iis01",
            "failing_since": minutes(-3),
        },
        at=T0,
        reason="3 failed probes",
        actor="probe",
    )
    assert created
    assert incident.id == "INC-0001"
    assert (incident.subject, incident.problem, incident.state) == ("www", "cert_expired", OPEN)
    assert incident.severity is Severity.CRITICAL
    assert incident.details == ("edge: expired 2 days ago", "origin iis01: expired 2 days ago")
    assert incident.diagnosis == ()
    assert (incident.site, incident.host, incident.failing_since) == ("www", "iis01", minutes(-3))
    assert incident.opened_at == incident.updated_at == T0
    assert incident.opened_at.tzinfo is not None
    assert (incident.announced, incident.acked_by, incident.resolved_at, incident.notified_severity) == (
        False,
        None,
        None,
        None,
    )
    assert store.incident("INC-0001") == incident
    assert open_one(store, "api").id == "INC-0002"


def test_a_second_open_for_the_same_site_returns_the_open_incident(store: SqlStore) -> None:
    first = open_one(store)
    again, created = store.open_incident(
        subject="www",
        problem="http_status",  # another problem of the same subject is still the same incident
        fields={"severity": "warning", "summary": "HTTP 503"},
        at=minutes(5),
        reason="probe",
        actor="probe",
        messages=[NewMessage("slack", MessageKind.CARD)],
    )
    assert not created
    assert again == first
    assert len(store.transitions(first.id)) == 1  # nothing written
    assert store.pending() == []
    assert [i.id for i in store.open_incidents()] == [first.id]


def test_only_one_incident_opens_when_eight_threads_race_for_one_subject(store: SqlStore) -> None:
    answers = race(
        8,
        lambda i: store.open_incident(
            subject="www",
            problem="cert_expired",
            fields={"severity": "critical", "summary": f"seen by {i}"},
            at=T0,
            reason="probe",
            actor=f"thread {i}",
            messages=[NewMessage("slack", MessageKind.CARD)],
        ),
    )
    assert sum(created for _, created in answers) == 1
    assert len({incident.id for incident, _ in answers}) == 1
    assert len(store.open_incidents("www")) == 1
    assert len(store.pending("slack")) == 1


def test_a_resolved_incident_lets_the_next_failure_open_a_new_one(store: SqlStore) -> None:
    first = open_one(store)
    assert (
        store.transition(
            first.id, expected=[OPEN], new=RESOLVED, step=Step.RESOLVED, reason="ok", actor="probe", at=minutes(10)
        )
        is not None
    )
    second = open_one(store, at=minutes(20))
    assert second.id != first.id
    assert [i.id for i in store.open_incidents("www")] == [second.id]


def test_the_opening_is_written_as_a_transition_with_its_messages(store: SqlStore) -> None:
    incident, _ = store.open_incident(
        subject="host:iis01",
        problem="binding_missing",
        fields={"severity": "warning", "summary": "no binding for www", "host": "iis01"},
        at=T0,
        reason="host check found it",
        actor="host_check",
        messages=[NewMessage("slack", MessageKind.CARD, payload={"headline": "binding missing"})],
    )
    assert incident.site is None
    [opening] = store.transitions(incident.id)
    assert (opening.old_state, opening.new_state, opening.step) == (None, OPEN, Step.DETECTED)
    assert (opening.at, opening.reason, opening.actor) == (T0, "host check found it", "host_check")
    [card] = store.pending("slack")
    # the caller could not know the id yet: the message is tied to the incident it opened
    assert (card.incident_id, card.kind, card.payload) == (
        incident.id,
        MessageKind.CARD,
        {"headline": "binding missing"},
    )
    assert card.created_at == card.next_attempt_at == T0


def test_opening_refuses_fields_the_store_sets_itself_or_that_do_not_exist(store: SqlStore) -> None:
    for fields in (
        {"severity": "critical", "summary": "s", "state": "acked"},
        {"severity": "critical"},
        {"severity": "critical", "summary": "s", "colour": "red"},
    ):
        with pytest.raises(ValueError, match=r"sets|needs|no field"):
            store.open_incident(subject="www", problem="p", fields=fields, at=T0, reason="r", actor="a")
    assert store.open_incidents() == []


def test_a_transition_moves_the_state_applies_changes_and_records_it(store: SqlStore) -> None:
    incident = open_one(store)
    acked = store.transition(
        incident.id.lower(),  # ids are case-insensitive
        expected=[OPEN],
        new=ACKED,
        step=Step.ACKED,
        reason="looking at it",
        actor="slack:U1",
        at=minutes(2),
        changes={
            "acked_by": "slack:U1",
            "severity": "warning",
            "notified_severity": Severity.WARNING,
            "diagnosis": ("binding points at an old certificate",),
            "notified_at": minutes(2),
            "announced": True,
        },
        messages=[NewMessage("slack", MessageKind.CARD)],
    )
    assert acked is not None
    assert (acked.state, acked.acked_by, acked.updated_at, acked.opened_at) == (ACKED, "slack:U1", minutes(2), T0)
    assert acked.severity is Severity.WARNING
    assert acked.notified_severity is Severity.WARNING
    assert acked.diagnosis == ("binding points at an old certificate",)
    assert (acked.notified_at, acked.announced, acked.resolved_at) == (minutes(2), True, None)
    assert store.incident(incident.id) == acked
    opening, ack = store.transitions(incident.id)
    assert (ack.old_state, ack.new_state, ack.step, ack.actor, ack.at) == (
        OPEN,
        ACKED,
        Step.ACKED,
        "slack:U1",
        minutes(2),
    )
    assert ack.seq > opening.seq
    assert [m.incident_id for m in store.pending()] == [incident.id]


def test_a_transition_may_keep_the_state_and_only_record_a_step(store: SqlStore) -> None:
    incident = open_one(store)
    updated = store.transition(
        incident.id,
        expected=[OPEN, ACKED],
        new=OPEN,
        step=Step.ESCALATED,
        reason="now critical",
        actor="probe",
        at=minutes(1),
        changes={"problem": "tls_alert"},
    )
    assert updated is not None
    assert (updated.state, updated.problem) == (OPEN, "tls_alert")
    assert [t.step for t in store.transitions(incident.id)] == [Step.DETECTED, Step.ESCALATED]


def test_resolving_sets_resolved_at_and_takes_the_incident_off_the_open_list(store: SqlStore) -> None:
    incident = open_one(store)
    resolved = store.transition(
        incident.id,
        expected=[OPEN, ACKED],
        new=RESOLVED,
        step=Step.VERIFIED,
        reason="probes pass",
        actor="action",
        at=minutes(30),
        changes={"resolution": "renewed and verified", "acted_at": minutes(20)},
    )
    assert resolved is not None
    assert (resolved.state, resolved.resolved_at, resolved.updated_at) == (RESOLVED, minutes(30), minutes(30))
    assert (resolved.resolution, resolved.acted_at, resolved.is_open) == ("renewed and verified", minutes(20), False)
    assert store.open_incidents() == []


def test_a_transition_from_an_unexpected_state_changes_nothing(store: SqlStore) -> None:
    incident = open_one(store)
    refused = store.transition(
        incident.id,
        expected=[ACKED],
        new=RESOLVED,
        step=Step.RESOLVED,
        reason="r",
        actor="probe",
        at=minutes(1),
        changes={"resolution": "x"},
        messages=[NewMessage("slack", MessageKind.CARD)],
    )
    assert refused is None
    assert store.incident(incident.id) == incident
    assert len(store.transitions(incident.id)) == 1
    assert store.pending() == []
    assert (
        store.transition("INC-9999", expected=[OPEN], new=ACKED, step=Step.ACKED, reason="r", actor="a", at=T0) is None
    )


def test_exactly_one_of_eight_racing_transitions_wins(store: SqlStore) -> None:
    incident = open_one(store)
    answers = race(
        8,
        lambda i: store.transition(
            incident.id,
            expected=[OPEN],
            new=ACKED,
            step=Step.ACKED,
            reason="ack",
            actor=f"slack:U{i}",
            at=minutes(1),
            changes={"acked_by": f"slack:U{i}"},
            messages=[NewMessage("slack", MessageKind.CARD)],
        ),
    )
    winners = [a for a in answers if a is not None]
    assert len(winners) == 1
    assert store.incident(incident.id) == winners[0]
    assert len(store.transitions(incident.id)) == 2
    assert len(store.pending()) == 1


def test_changes_may_not_touch_the_id_subject_or_opening_time(store: SqlStore) -> None:
    incident = open_one(store)
    for changes in ({"id": "INC-0042"}, {"subject": "api"}, {"opened_at": T0}, {"details": "one string"}):
        with pytest.raises((ValueError, TypeError)):
            store.transition(
                incident.id,
                expected=[OPEN],
                new=OPEN,
                step=Step.UPDATED,
                reason="r",
                actor="a",
                at=minutes(1),
                changes=changes,
            )
    assert store.incident(incident.id) == incident


def test_open_incidents_are_listed_oldest_first_and_by_subject(store: SqlStore) -> None:
    www, api, host = open_one(store, "www"), open_one(store, "api", at=minutes(1)), open_one(store, "host:iis01")
    assert [i.id for i in store.open_incidents()] == [www.id, api.id, host.id]
    assert [i.id for i in store.open_incidents("api")] == [api.id]
    assert store.open_incidents("nothing") == []


def test_incidents_are_listed_newest_first_with_resolved_ones_and_a_limit(store: SqlStore) -> None:
    old = open_one(store, "old")
    store.transition(
        old.id, expected=[OPEN], new=RESOLVED, step=Step.RESOLVED, reason="r", actor="probe", at=minutes(10)
    )
    late = open_one(store, "late", at=minutes(20))
    store.transition(
        late.id, expected=[OPEN], new=RESOLVED, step=Step.RESOLVED, reason="r", actor="probe", at=minutes(40)
    )
    current = open_one(store, "current", at=minutes(50))
    assert [i.id for i in store.incidents()] == [current.id, late.id, old.id]
    assert [i.id for i in store.incidents(limit=2)] == [current.id, late.id]
    # since: the ones open at some moment after it (resolved after it, or still open)
    assert [i.id for i in store.incidents(since=minutes(30))] == [current.id, late.id]
    assert store.incident("inc-0002") == store.incidents()[1]
    assert store.incident("INC-0404") is None


def test_datetimes_come_back_in_utc_whatever_zone_they_went_in_with(store: SqlStore) -> None:
    tokyo = dt.timezone(dt.timedelta(hours=9))
    incident = open_one(store, at=T0.astimezone(tokyo))
    assert incident.opened_at == T0
    assert incident.opened_at.utcoffset() == dt.timedelta(0)


def test_a_naive_datetime_is_refused(store: SqlStore) -> None:
    with pytest.raises(StatementError, match="timezone-aware"):
        open_one(store, at=dt.datetime(2025, 1, 31, 9, 0))
    assert store.open_incidents() == []
