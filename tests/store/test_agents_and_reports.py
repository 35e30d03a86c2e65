"""What probe agents and the hosts' own scripts leave in the store: each agent's latest round per
site, when each agent last reported, and each host's latest report per kind. On every backend."""

from __future__ import annotations

from bot.core.model import HostReport
from bot.store import SqlStore
from tests.store.helpers import EXPIRED, minutes, probe_result


def test_an_agents_round_replaces_its_last_one_for_the_site_and_leaves_other_vantage_points_alone(
    store: SqlStore,
) -> None:
    store.save_vantage_results("www", "tokyo", minutes(0), [probe_result("www")])
    store.save_vantage_results("www", "frankfurt", minutes(0), [probe_result("www", problems=(EXPIRED,))])
    store.save_vantage_results("www", "tokyo", minutes(1), [probe_result("www", problems=(EXPIRED,))])
    store.save_vantage_results("api", "tokyo", minutes(1), [])

    rows = store.vantage_results("www")
    assert [(v.site, v.vantage, v.received_at) for v in rows] == [
        ("www", "frankfurt", minutes(0)),
        ("www", "tokyo", minutes(1)),
    ]
    assert [r.problems for r in rows[1].results] == [(EXPIRED,)]
    assert rows[1].results[0] == probe_result("www", problems=(EXPIRED,))  # typed, as it was saved
    assert [(v.site, v.vantage) for v in store.vantage_results()] == [
        ("api", "tokyo"),
        ("www", "frankfurt"),
        ("www", "tokyo"),
    ]
    assert store.vantage_results("nothing") == []


def test_each_agents_last_report_is_kept_with_its_time(store: SqlStore) -> None:
    assert store.agent_reports() == {}
    store.save_agent_report("tokyo", minutes(0))
    store.save_agent_report("frankfurt", minutes(2))
    store.save_agent_report("tokyo", minutes(5))
    assert store.agent_reports() == {"tokyo": minutes(5), "frankfurt": minutes(2)}


def test_a_hosts_latest_report_of_each_kind_is_kept_as_it_came(store: SqlStore) -> None:
    heal = {"host": "iis01", "steps": [{"name": "repairstore", "ok": True}], "note": "naïve ✓"}
    store.save_report("iis01", "self-heal", minutes(0), False, {"host": "iis01", "steps": []})
    store.save_report("iis01", "self-heal", minutes(5), True, heal)
    store.save_report("iis01", "post-renew", minutes(6), True, {"host": "iis01", "steps": []})
    store.save_report("iis02", "self-heal", minutes(1), True, {"host": "iis02", "steps": []})

    assert store.host_reports("iis01") == [
        HostReport("iis01", "post-renew", minutes(6), True, {"host": "iis01", "steps": []}),
        HostReport("iis01", "self-heal", minutes(5), True, heal),
    ]
    assert [(r.host, r.kind) for r in store.host_reports()] == [
        ("iis01", "post-renew"),
        ("iis01", "self-heal"),
        ("iis02", "self-heal"),
    ]


def test_rounds_asked_for_by_another_replica_are_handed_out_once_keeping_the_soonest(store: SqlStore) -> None:
    assert store.take_probe_soon() == {}
    store.ask_probe_soon("www", minutes(5))
    store.ask_probe_soon("www", minutes(2))  # sooner: kept
    store.ask_probe_soon("www", minutes(9))  # later: the sooner one stays
    store.ask_probe_soon("api", minutes(1))
    assert store.take_probe_soon() == {"www": minutes(2), "api": minutes(1)}
    assert store.take_probe_soon() == {}
