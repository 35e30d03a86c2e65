"""The allowed moves of incidents and action requests, and who may cause each."""

from __future__ import annotations

import pytest

from bot.core.model import REQUEST_MOVES, Cause, IncidentState, RequestState, TransitionRefused, check_move
from bot.store import open_store

OPEN, ACKED, RESOLVED = IncidentState.OPEN, IncidentState.ACKED, IncidentState.RESOLVED


def test_only_a_person_acknowledges_an_incident() -> None:
    check_move(OPEN, ACKED, Cause.PERSON)
    for cause in (Cause.PROBE, Cause.POLICY, Cause.ACTION, Cause.SYSTEM, Cause.HOST_CHECK):
        with pytest.raises(TransitionRefused):
            check_move(OPEN, ACKED, cause)


def test_a_person_cannot_resolve_an_incident_by_hand_only_a_verification_can() -> None:
    for state in (OPEN, ACKED):
        with pytest.raises(TransitionRefused):
            check_move(state, RESOLVED, Cause.PERSON)
        check_move(state, RESOLVED, Cause.ACTION)
        check_move(state, RESOLVED, Cause.PROBE)


def test_a_resolved_incident_never_reopens_and_an_ack_is_never_undone() -> None:
    for new in (OPEN, ACKED):
        for cause in Cause:
            with pytest.raises(TransitionRefused):
                check_move(RESOLVED, new, cause)
    # it stays resolved: only how an action on it ended joins its timeline, by the action or certops
    for cause in set(Cause) - {Cause.ACTION, Cause.SYSTEM}:
        with pytest.raises(TransitionRefused):
            check_move(RESOLVED, RESOLVED, cause)
    check_move(RESOLVED, RESOLVED, Cause.ACTION)
    check_move(RESOLVED, RESOLVED, Cause.SYSTEM)
    with pytest.raises(TransitionRefused):
        check_move(ACKED, OPEN, Cause.PROBE)


def test_finished_requests_have_no_way_out() -> None:
    finished = set(RequestState) - {RequestState.PENDING, RequestState.RUNNING}
    assert all(state not in REQUEST_MOVES for state in finished)
    assert RequestState.DONE not in REQUEST_MOVES[RequestState.PENDING], "nothing is done without running"


def test_the_store_refuses_a_request_move_the_state_machine_does_not_allow() -> None:
    store = open_store(":memory:")
    try:
        request = store.create_request(
            incident_id=None,
            site=None,
            host="iis01",
            action="audit-tasks",
            args=(),
            target="iis01",
            requested_by="console:test",
            ttl=60,
        )
        with pytest.raises(TransitionRefused):
            store.claim_request(request.token, RequestState.PENDING, RequestState.DONE)
        assert store.request(request.token).state is RequestState.PENDING  # type: ignore[union-attr]
    finally:
        store.close()
