"""Action requests: proposals, approvals, one run at a time, and compare-and-set claims."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.core.model import ActionRequest, RequestState, TransitionRefused
from bot.store import SqlStore, parse_iso
from tests.store.helpers import race

PENDING, RUNNING, DONE, FAILED = RequestState.PENDING, RequestState.RUNNING, RequestState.DONE, RequestState.FAILED


def propose(
    store: SqlStore,
    *args: str,
    host: str = "iis01",
    action: str = "renew",
    site: str | None = "www",
    incident_id: str | None = "INC-0001",
) -> ActionRequest:
    return store.create_request(
        incident_id=incident_id,
        site=site,
        host=host,
        action=action,
        args=args or ("r1",),
        target=f"{action} {' '.join(args)}",
        requested_by="slack:U1",
        ttl=600,
    )


def test_a_new_request_is_pending_and_typed(store: SqlStore) -> None:
    request = propose(store, "A" * 40, "--force")
    assert request.state is PENDING
    assert request.args == ("A" * 40, "--force")
    assert (request.host, request.action, request.site, request.incident_id) == ("iis01", "renew", "www", "INC-0001")
    assert (request.requested_by, request.result) == ("slack:U1", None)
    # the short ISO form callers have always parsed
    assert request.created_at.endswith("Z")
    assert len(request.created_at) == len("2025-01-31T09:00:00Z")
    assert parse_iso(request.expires_at) - parse_iso(request.created_at) == dt.timedelta(seconds=600)
    assert store.request(request.token) == request
    assert store.request("no-such-token") is None


def test_a_new_proposal_for_exactly_the_same_thing_supersedes_the_pending_one(store: SqlStore) -> None:
    old = propose(store, "r1")
    other_args = propose(store, "r2")
    other_host = propose(store, "r1", host="iis02")
    new = propose(store, "r1")
    assert store.request(old.token).state is RequestState.SUPERSEDED  # type: ignore[union-attr]
    assert store.request(new.token).state is PENDING  # type: ignore[union-attr]
    assert store.request(other_args.token).state is PENDING  # type: ignore[union-attr]
    assert store.request(other_host.token).state is PENDING  # type: ignore[union-attr]


def test_a_requester_the_supersede_rule_refuses_gets_the_waiting_request_back(store: SqlStore) -> None:
    store.may_supersede = lambda requester, action: requester == "slack:U1"
    waiting = propose(store, "r1")
    again = store.create_request(
        incident_id="INC-0001", site="www", host="iis01", action="renew", args=("r1",),
        target="renew r1", requested_by="slack:UBYSTANDER", ttl=600,
    )  # fmt: skip
    assert again == waiting
    assert [r.state for r in store.requests_for("INC-0001")] == [PENDING]
    replaced = propose(store, "r1")  # slack:U1 may
    assert store.request(waiting.token).state is RequestState.SUPERSEDED  # type: ignore[union-attr]
    assert replaced.state is PENDING


def test_an_expired_waiting_request_is_replaced_whoever_asks(store: SqlStore) -> None:
    store.may_supersede = lambda requester, action: False
    dead = store.create_request(
        incident_id="INC-0001", site="www", host="iis01", action="renew", args=("r1",),
        target="renew r1", requested_by="slack:U1", ttl=-1,
    )  # fmt: skip
    fresh = propose(store, "r1")
    assert fresh.token != dead.token
    assert store.request(dead.token).state is RequestState.SUPERSEDED  # type: ignore[union-attr]
    assert fresh.state is PENDING


def test_requests_for_an_incident_are_listed_oldest_first(store: SqlStore) -> None:
    first = propose(store, "r1")
    second = propose(store, "r2")
    propose(store, "r3", incident_id="INC-0002")
    propose(store, "r4", incident_id=None)
    assert [r.token for r in store.requests_for("inc-0001")] == [first.token, second.token]
    assert store.requests_for("INC-0404") == []


def test_each_person_approves_once_and_everyone_who_approved_is_listed(store: SqlStore) -> None:
    request = propose(store)
    assert store.add_approval(request.token, "slack:U1") == ["slack:U1"]
    assert store.add_approval(request.token, "slack:U1") == ["slack:U1"]
    assert store.add_approval(request.token, "line:U2") == ["slack:U1", "line:U2"]


def test_eight_people_approving_at_once_are_all_recorded(store: SqlStore) -> None:
    request = propose(store)
    race(8, lambda i: store.add_approval(request.token, f"slack:U{i}"))
    assert sorted(store.add_approval(request.token, "slack:U0")) == sorted(f"slack:U{i}" for i in range(8))


def test_a_pending_request_starts_once(store: SqlStore) -> None:
    request = propose(store)
    assert store.start_request(request.token) == "started"
    assert store.request(request.token).state is RUNNING  # type: ignore[union-attr]
    assert store.start_request(request.token) == "taken"
    assert store.start_request("no-such-token") == "taken"


def test_exactly_one_of_eight_threads_starting_one_request_starts_it(store: SqlStore) -> None:
    request = propose(store)
    answers = race(8, lambda _: store.start_request(request.token))
    assert sorted(answers) == ["started"] + ["taken"] * 7


def test_a_forced_and_a_plain_renewal_of_one_renewal_never_run_at_once(store: SqlStore) -> None:
    def renew(*args: str) -> str:
        return store.start_request(propose(store, *args, site=None).token)

    assert renew("r1") == "started"
    assert renew("r1", "--force") == "busy"
    assert renew("r2", "--force") == "started"
    assert store.start_request(propose(store, "r1", host="iis02").token) == "started"  # another host
    assert store.start_request(propose(store, "r1", action="rebind").token) == "started"  # another action


def test_of_two_identical_runs_requested_at_once_one_starts_and_the_other_is_busy(store: SqlStore) -> None:
    tokens = [propose(store, "r1", site=f"site{i}").token for i in range(2)]  # two sites, one renewal
    assert sorted(race(2, lambda i: store.start_request(tokens[i]))) == ["busy", "started"]


def test_a_busy_request_stays_pending_and_starts_once_the_run_ended(store: SqlStore) -> None:
    running = propose(store, "r1", site="a")
    waiting = propose(store, "r1", site="b")
    assert store.start_request(running.token) == "started"
    assert store.start_request(waiting.token) == "busy"
    assert store.request(waiting.token).state is PENDING  # type: ignore[union-attr]
    assert store.claim_request(running.token, RUNNING, DONE, "renewed")
    assert store.start_request(waiting.token) == "started"


def test_a_claim_is_a_compare_and_set_that_keeps_the_result_unless_given(store: SqlStore) -> None:
    request = propose(store)
    assert not store.claim_request(request.token, RUNNING, DONE, "done")
    assert store.claim_request(request.token, PENDING, RUNNING)
    assert store.claim_request(request.token, RUNNING, FAILED, "WinRM timed out")
    with pytest.raises(TransitionRefused):  # a finished request has no way out, not even to itself
        store.claim_request(request.token, FAILED, FAILED)
    after = store.request(request.token)
    assert (after.state, after.result) == (FAILED, "WinRM timed out")  # type: ignore[union-attr]
    assert not store.claim_request("no-such-token", PENDING, RUNNING)


def test_exactly_one_of_eight_racing_claims_wins(store: SqlStore) -> None:
    request = propose(store)
    assert sum(race(8, lambda i: store.claim_request(request.token, PENDING, RequestState.EXPIRED))) == 1


def test_runs_left_running_by_a_previous_process_become_failed_at_start(store: SqlStore) -> None:
    running = propose(store, "r1")
    pending = propose(store, "r2")
    store.start_request(running.token)
    [interrupted] = store.fail_interrupted()
    assert interrupted.token == running.token
    assert interrupted.state is FAILED
    assert interrupted.result is not None
    assert interrupted.result.startswith("interrupted")
    assert store.request(pending.token).state is PENDING  # type: ignore[union-attr]
    assert store.fail_interrupted() == []
