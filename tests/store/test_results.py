"""Probe results (the latest per path, typed) and site health."""

from __future__ import annotations

import pytest

from bot.core.model import SiteHealth
from bot.store import SqlStore
from tests.store.helpers import EXPIRED, T0, minutes, probe_result


def test_results_come_back_as_the_probe_results_that_were_saved(store: SqlStore) -> None:
    public = probe_result("www", problems=(EXPIRED,))
    origin = probe_result("www", via="origin", origin="10.0.0.5")
    store.save_results("www", [origin, public])
    assert store.last_results("www") == [public, origin]  # the view from outside first


def test_saving_replaces_all_of_a_sites_results(store: SqlStore) -> None:
    store.save_results("www", [probe_result("www"), probe_result("www", via="origin", origin="10.0.0.5")])
    store.save_results("www", [probe_result("www", via="origin", origin="10.0.0.6")])
    assert [r.target.connect_host for r in store.last_results("www")] == ["10.0.0.6"]
    store.save_results("www", [])
    assert store.last_results("www") == []


def test_results_of_all_sites_are_ordered_by_site_then_public_first(store: SqlStore) -> None:
    store.save_results("www", [probe_result("www", via="origin", origin="10.0.0.5"), probe_result("www")])
    store.save_results("api", [probe_result("api")])
    assert [(r.target.site, r.target.via) for r in store.last_results()] == [
        ("api", "public"),
        ("www", "public"),
        ("www", "origin"),
    ]
    assert store.last_results("nothing") == []


def test_two_results_for_one_path_keep_the_last(store: SqlStore) -> None:
    store.save_results("www", [probe_result("www"), probe_result("www", problems=(EXPIRED,))])
    assert [r.problems for r in store.last_results("www")] == [(EXPIRED,)]


def test_a_site_never_seen_has_the_default_health(store: SqlStore) -> None:
    assert store.site_health("www") == SiteHealth("www")


def test_site_health_is_saved_and_replaced(store: SqlStore) -> None:
    failing = SiteHealth(
        "www",
        failing=True,
        consecutive_failures=3,
        first_failure_at=minutes(-10),
        flips=(minutes(-50), minutes(-10)),
        last_checked_at=T0,
    )
    store.save_site_health(failing)
    assert store.site_health("www") == failing
    healed = SiteHealth("www", consecutive_successes=1, flips=(minutes(-50), minutes(-10), T0), last_checked_at=T0)
    store.save_site_health(healed)
    assert store.site_health("www") == healed
    assert store.site_health("api") == SiteHealth("api")


def test_a_round_saves_its_results_and_counted_health_together_and_returns_both_healths(store: SqlStore) -> None:
    store.save_site_health(SiteHealth("www", consecutive_successes=4, last_checked_at=minutes(-5)))
    seen: list[SiteHealth] = []

    def count(before: SiteHealth) -> SiteHealth:
        seen.append(before)
        return SiteHealth("www", failing=True, consecutive_failures=1, last_checked_at=minutes(0))

    before, after = store.record_round("www", [probe_result("www", problems=(EXPIRED,))], count)
    assert seen == [before]
    assert before == SiteHealth("www", consecutive_successes=4, last_checked_at=minutes(-5))
    assert after == store.site_health("www")
    assert after.failing is True
    assert [r.problems for r in store.last_results("www")] == [(EXPIRED,)]


def test_a_round_whose_counting_fails_leaves_the_results_and_the_health_as_they_were(store: SqlStore) -> None:
    store.record_round("www", [probe_result("www")], lambda before: SiteHealth("www", consecutive_successes=1))

    def broken(before: SiteHealth) -> SiteHealth:
        raise ValueError("a bug in the thresholds")

    with pytest.raises(ValueError, match="thresholds"):
        store.record_round("www", [probe_result("www", problems=(EXPIRED,))], broken)
    assert store.site_health("www") == SiteHealth("www", consecutive_successes=1)
    assert [r.problems for r in store.last_results("www")] == [()]
