"""The audit log, handled chat events, and mutes."""

from __future__ import annotations

import datetime as dt

from bot.core.model import AuditEntry
from bot.store import SqlStore, parse_iso
from tests.store.helpers import minutes, race


def test_the_audit_log_gives_the_last_entries_oldest_first(store: SqlStore) -> None:
    for i in range(5):
        store.audit("slack:U1", "heal", f"site{i}", "ok", detail=f"#{i}")
    store.audit("certops", "start", "-", "ok")
    entries = store.audit_log(limit=3)
    assert [e.subject for e in entries] == ["site3", "site4", "-"]
    assert all(isinstance(e, AuditEntry) for e in entries)
    last = entries[-1]
    assert (last.actor, last.event, last.outcome, last.detail) == ("certops", "start", "ok", "")
    assert entries[0].seq < entries[1].seq < last.seq
    assert abs(parse_iso(last.at) - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
    assert last.at.endswith("Z")
    assert len(last.at) == len("2025-01-31T09:00:00Z")
    assert len(store.audit_log()) == 6


def test_an_event_id_is_new_only_the_first_time_per_platform(store: SqlStore) -> None:
    assert store.first_time("slack", "Ev01")
    assert not store.first_time("slack", "Ev01")
    assert store.first_time("line", "Ev01")


def test_exactly_one_of_eight_redeliveries_of_an_event_is_the_first(store: SqlStore) -> None:
    assert sum(race(8, lambda _: store.first_time("slack", "Ev02"))) == 1


def test_pruning_forgets_events_older_than_the_limit_only(store: SqlStore) -> None:
    store.first_time("slack", "Ev01")
    assert store.prune_seen_events(older_than_days=30) == 0
    assert not store.first_time("slack", "Ev01")
    assert store.prune_seen_events(older_than_days=0) == 1
    assert store.first_time("slack", "Ev01")


def test_a_mute_is_stored_replaced_and_given_back_even_once_it_has_passed(store: SqlStore) -> None:
    assert store.muted_until("www") is None
    store.mute("www", minutes(60), "slack:U1")
    assert store.muted_until("www") == minutes(60)
    store.mute("www", minutes(-60), "slack:U2")  # the caller's clock decides whether it still holds
    assert store.muted_until("www") == minutes(-60)
    assert store.muted_until("api") is None
