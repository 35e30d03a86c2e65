"""The outbox: in-order delivery per platform, retries, permanent failures, superseded card edits,
and where each card was posted."""

from __future__ import annotations

import uuid

from bot.core.model import IncidentState, MessageKind, MessageState, NewMessage, Step
from bot.store import SqlStore
from tests.store.helpers import T0, minutes, open_one, race

CARD, RENOTIFY, DIGEST = MessageKind.CARD, MessageKind.RENOTIFY, MessageKind.DIGEST


def test_queued_messages_are_pending_oldest_first_each_with_its_own_retry_key(store: SqlStore) -> None:
    store.enqueue(
        [
            NewMessage("slack", DIGEST, payload={"sites": ["www", "api"], "n": 2}),
            NewMessage("line", DIGEST),
            NewMessage("slack", MessageKind.NOTICE),
        ],
        at=T0,
    )
    digest, line, notice = store.pending()
    assert (digest.platform, digest.kind, digest.incident_id) == ("slack", DIGEST, None)
    assert digest.payload == {"sites": ["www", "api"], "n": 2}
    assert (digest.state, digest.attempts, digest.created_at, digest.next_attempt_at) == (
        MessageState.PENDING,
        0,
        T0,
        T0,
    )
    assert (digest.last_error, digest.sent_at) == (None, None)
    assert digest.seq < line.seq < notice.seq
    assert len({digest.retry_key, line.retry_key, notice.retry_key}) == 3
    assert uuid.UUID(digest.retry_key).version == 4
    assert [m.seq for m in store.pending("slack")] == [digest.seq, notice.seq]


def test_only_the_oldest_pending_message_of_a_platform_is_due(store: SqlStore) -> None:
    store.enqueue([NewMessage("slack", DIGEST)], at=T0)
    store.enqueue([NewMessage("slack", MessageKind.NOTICE)], at=minutes(1))
    head = store.next_due("slack", minutes(5))
    assert head is not None
    assert head.kind is DIGEST
    assert store.next_due("slack", minutes(-1)) is None  # not yet due
    assert store.next_due("line", minutes(5)) is None


def test_a_message_waiting_for_its_retry_holds_back_the_ones_behind_it(store: SqlStore) -> None:
    store.enqueue(
        [NewMessage("slack", DIGEST), NewMessage("slack", MessageKind.NOTICE), NewMessage("line", DIGEST)], at=T0
    )
    head = store.next_due("slack", T0)
    assert head is not None
    store.mark_retry(head.seq, "rate limited", minutes(2))
    assert store.next_due("slack", minutes(1)) is None  # the notice waits behind the digest
    assert store.next_due("line", minutes(1)) is not None  # another platform does not
    retried = store.next_due("slack", minutes(2))
    assert retried is not None
    assert retried.seq == head.seq
    assert (retried.attempts, retried.last_error, retried.next_attempt_at) == (1, "rate limited", minutes(2))
    assert retried.retry_key == head.retry_key  # the same on every attempt


def test_a_sent_message_is_no_longer_pending_and_is_sent_once(store: SqlStore) -> None:
    store.enqueue([NewMessage("slack", DIGEST), NewMessage("slack", MessageKind.NOTICE)], at=T0)
    head = store.next_due("slack", T0)
    assert head is not None
    assert store.mark_sent(head.seq, minutes(1))
    assert not store.mark_sent(head.seq, minutes(2))
    following = store.next_due("slack", minutes(1))
    assert following is not None
    assert following.kind is MessageKind.NOTICE
    assert [m.seq for m in store.pending()] == [following.seq]


def test_exactly_one_of_eight_senders_marks_a_message_sent(store: SqlStore) -> None:
    store.enqueue([NewMessage("slack", DIGEST)], at=T0)
    [message] = store.pending()
    assert sum(race(8, lambda _: store.mark_sent(message.seq, minutes(1)))) == 1


def test_a_permanent_failure_is_recorded_counted_and_not_retried(store: SqlStore) -> None:
    store.enqueue([NewMessage("line", DIGEST), NewMessage("line", MessageKind.NOTICE)], at=T0)
    head = store.next_due("line", T0)
    assert head is not None
    assert store.failed_count() == 0
    store.mark_failed(head.seq, "400 invalid reply token", minutes(1))
    assert store.failed_count() == 1
    after = store.next_due("line", minutes(1))
    assert after is not None
    assert after.seq != head.seq
    assert not store.mark_sent(head.seq, minutes(2))  # failed is final
    store.mark_retry(head.seq, "late", minutes(3))  # and a retry of it changes nothing
    assert store.failed_count() == 1
    assert [m.seq for m in store.pending()] == [after.seq]


def test_older_pending_edits_of_a_card_are_superseded_by_the_newest(store: SqlStore) -> None:
    incident = open_one(store)
    other = open_one(store, "api")
    store.enqueue(
        [
            NewMessage("slack", CARD, incident.id, {"v": 1}),
            NewMessage("slack", RENOTIFY, incident.id),
            NewMessage("slack", CARD, other.id),
            NewMessage("line", CARD, incident.id),
            NewMessage("slack", CARD, incident.id, {"v": 2}),
            NewMessage("slack", CARD, incident.id, {"v": 3}),
        ],
        at=T0,
    )
    newest = store.pending("slack")[-1]
    assert newest.payload == {"v": 3}
    assert store.supersede("slack", incident.id.lower(), newest.seq) == 2
    left = store.pending()
    assert [(m.platform, m.kind, m.incident_id, m.payload) for m in left] == [
        ("slack", RENOTIFY, incident.id, {}),
        ("slack", CARD, other.id, {}),
        ("line", CARD, incident.id, {}),
        ("slack", CARD, incident.id, {"v": 3}),
    ]
    assert store.supersede("slack", incident.id, newest.seq) == 0


def test_a_sent_card_is_not_superseded(store: SqlStore) -> None:
    incident = open_one(store)
    store.enqueue([NewMessage("slack", CARD, incident.id), NewMessage("slack", CARD, incident.id)], at=T0)
    first, second = store.pending()
    store.mark_sent(first.seq, minutes(1))
    assert store.supersede("slack", incident.id, second.seq) == 0


def test_messages_of_a_transition_are_written_with_it(store: SqlStore) -> None:
    incident = open_one(store)
    store.transition(
        incident.id,
        expected=[IncidentState.OPEN],
        new=IncidentState.ACKED,
        step=Step.ACKED,
        reason="r",
        actor="slack:U1",
        at=minutes(3),
        messages=[NewMessage("slack", CARD), NewMessage("line", RENOTIFY, payload={"text": "acked"})],
    )
    card, push = store.pending()
    assert (card.incident_id, push.incident_id) == (incident.id, incident.id)
    assert card.created_at == push.next_attempt_at == minutes(3)
    assert push.payload == {"text": "acked"}


def test_a_card_reference_is_saved_and_replaced_per_platform(store: SqlStore) -> None:
    assert store.card_ref("INC-0001", "slack") is None
    store.save_card_ref("INC-0001", "slack", "C0123:1706691600.000100")
    store.save_card_ref("INC-0001", "line", "msg-1")
    assert store.card_ref("inc-0001", "slack") == "C0123:1706691600.000100"
    store.save_card_ref("INC-0001", "slack", "C0123:1706691700.000200")
    assert store.card_ref("INC-0001", "slack") == "C0123:1706691700.000200"
    assert store.card_ref("INC-0001", "line") == "msg-1"


def test_pending_cards_are_one_cards_pending_edits_and_the_count_covers_every_kind(store: SqlStore) -> None:
    incident = open_one(store)
    other = open_one(store, "api")
    store.enqueue(
        [
            NewMessage("slack", CARD, incident.id, {"v": 1}),
            NewMessage("slack", RENOTIFY, incident.id),
            NewMessage("slack", CARD, other.id),
            NewMessage("line", CARD, incident.id),
            NewMessage("slack", CARD, incident.id, {"v": 2}),
        ],
        at=T0,
    )
    cards = store.pending_cards("slack", incident.id.lower())
    assert [m.payload for m in cards] == [{"v": 1}, {"v": 2}]
    assert (store.pending_count(), store.pending_count("slack"), store.pending_count("line")) == (5, 4, 1)
    store.mark_sent(cards[0].seq, T0)
    assert [m.payload for m in store.pending_cards("slack", incident.id)] == [{"v": 2}]
    assert store.pending_count("slack") == 3
