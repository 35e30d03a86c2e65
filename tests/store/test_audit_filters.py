"""audit_log's filters for `certops audit`: since a moment, and about one host (or its sites)."""

from __future__ import annotations

import datetime as dt

from bot.store import SqlStore


def test_since_keeps_the_entries_written_at_or_after_the_moment(store: SqlStore) -> None:
    store.audit("slack:U1", "heal", "www", "ok")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert [e.subject for e in store.audit_log(since=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))] == ["www"]
    assert store.audit_log(since=later) == []


def test_host_matches_the_whole_name_as_the_subject_or_its_last_word(store: SqlStore) -> None:
    for subject in (
        "repair-store 3A on iis01",  # a host action
        "iis01",  # a rate-limit refusal names the host alone
        "/ssl audit iis01",  # the command that reached it
        "repair-store 3A on iis010",  # another host whose name starts the same
        "iis01 and more",  # the name, but not as the last word
        "www",  # a site of iis01, only when asked for
        "shop",
    ):
        store.audit("slack:U1", "run", subject, "ok")
    assert [e.subject for e in store.audit_log(host="iis01")] == [
        "repair-store 3A on iis01",
        "iis01",
        "/ssl audit iis01",
    ]
    assert [e.subject for e in store.audit_log(host="iis01", sites=["www"])][-1] == "www"
    assert store.audit_log(host="iis0%") == []  # LIKE's wildcards in a name are only characters
    assert store.audit_log(host="iis_1") == []


def test_the_filters_and_the_limit_combine(store: SqlStore) -> None:
    for i in range(5):
        store.audit("certops", "run", f"renew {i} on iis01", "ok")
    store.audit("certops", "run", "renew 9 on iis02", "ok")
    entries = store.audit_log(2, host="iis01", since=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    assert [e.subject for e in entries] == ["renew 3 on iis01", "renew 4 on iis01"]
