"""The store: one owner at a time, older layouts opened, and runs that are really the same."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.store import Store, StoreBusy


def test_a_second_process_cannot_take_over_a_database_in_use(tmp_path: Path) -> None:
    first = Store(tmp_path / "certops.db")
    request = first.create_request(
        incident_id=None, site=None, host="iis01", action="repair-store", args=("A" * 40,),
        target="A" * 40, requested_by="x", ttl=60,
    )  # fmt: skip
    assert first.start_request(request.token) == "started"
    with pytest.raises(StoreBusy, match="another certops process is using"):
        Store(tmp_path / "certops.db")
    assert first.request(request.token).state == "running"  # type: ignore[union-attr]
    first.close()
    second = Store(tmp_path / "certops.db")  # the lock went with the first owner
    assert [r.token for r in second.fail_interrupted()] == [request.token]
    second.close()


def test_a_database_with_the_older_probe_results_layout_still_opens(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "certops.db")
    db.execute(
        "CREATE TABLE probe_results (site TEXT NOT NULL, via TEXT NOT NULL, address TEXT NOT NULL, "
        "status TEXT NOT NULL, checked_at TEXT NOT NULL, result_json TEXT NOT NULL, PRIMARY KEY (site, via, address))"
    )
    db.commit()
    db.close()
    store = Store(tmp_path / "certops.db")
    assert store.last_results("www") == []
    store.save_results("www", [{"via": "public", "port": 443, "status": "ok", "checked_at": "t"}])
    assert [r["status"] for r in store.last_results("www")] == ["ok"]
    store.close()


def test_a_forced_and_a_plain_renewal_of_one_renewal_never_run_at_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "certops.db")

    def renew(*args: str) -> str:
        request = store.create_request(
            incident_id=None, site=None, host="iis01", action="renew", args=args,
            target="r1", requested_by="x", ttl=60,
        )  # fmt: skip
        return store.start_request(request.token)

    assert renew("r1") == "started"
    assert renew("r1", "--force") == "busy"
    assert renew("r2", "--force") == "started"
    store.close()
