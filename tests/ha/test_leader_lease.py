"""The leader lease on a real database: one holder at a time, a term that counts hand-overs, a
lease that runs out when its holder stops renewing, and a holder that stops leading on its own
when it cannot reach the database, before anyone else may take over."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from bot.core.model import Lease
from bot.leader import STOP_AT, LeaderElector
from bot.store import SqlStore

T0 = dt.datetime(2026, 12, 2, 6, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


@pytest.fixture
def stores(tmp_path: Path) -> list[SqlStore]:
    """Two stores on one database file, as two replicas see it (the second as a guest: SQLite
    lets one process own a file; on PostgreSQL both are ordinary)."""
    owner = SqlStore(tmp_path / "c.db")
    guest = SqlStore(tmp_path / "c.db", guest=True)
    yield [owner, guest]
    guest.close()
    owner.close()


def test_only_one_replica_holds_the_lease_until_it_runs_out(stores: list[SqlStore]) -> None:
    a, b = stores
    assert a.claim_lease("a", at(0), 15) == Lease("a", 1, at(15))
    assert b.claim_lease("b", at(1), 15) is None
    assert a.claim_lease("a", at(5), 15) == Lease("a", 1, at(20))  # a renewal keeps the term
    assert b.claim_lease("b", at(19.9), 15) is None
    assert b.claim_lease("b", at(20), 15) == Lease("b", 2, at(35))  # run out: b takes it, a new term
    assert a.claim_lease("a", at(21), 15) is None
    assert a.lease() == Lease("b", 2, at(35))


def test_a_released_lease_can_be_taken_at_once(stores: list[SqlStore]) -> None:
    a, b = stores
    a.claim_lease("a", at(0), 15)
    b.release_lease("a-not-me", at(1))  # only the holder can give it up
    assert b.claim_lease("b", at(1), 15) is None
    a.release_lease("a", at(2))
    assert b.claim_lease("b", at(2), 15) == Lease("b", 2, at(17))


class Flaky:
    """The replica's view of the database: passes through, or fails as a partition would."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.cut = False

    def claim_lease(self, holder: str, now: dt.datetime, ttl: float) -> Lease | None:
        if self.cut:
            raise ConnectionError("the database is unreachable")
        return self.store.claim_lease(holder, now, ttl)

    def release_lease(self, holder: str, now: dt.datetime) -> None:
        if not self.cut:
            self.store.release_lease(holder, now)

    def lease(self) -> Lease | None:
        if self.cut:
            raise ConnectionError("the database is unreachable")
        return self.store.lease()


def test_two_electors_agree_on_one_leader_and_a_cut_off_leader_stops_before_its_lease_ends(
    stores: list[SqlStore],
) -> None:
    ttl = 1.5

    async def main() -> None:
        loop = asyncio.get_running_loop()
        events: list[tuple[str, str, float]] = []

        def elector(name: str, store: object) -> LeaderElector:
            async def elected() -> None:
                events.append((name, "leads", loop.time()))

            async def deposed() -> None:
                events.append((name, "stops", loop.time()))

            return LeaderElector(store, ttl, on_elected=elected, on_deposed=deposed, holder=name)  # type: ignore[arg-type]

        first_view, second_view = Flaky(stores[0]), Flaky(stores[1])
        first, second = elector("a", first_view), elector("b", second_view)
        first.start()
        await asyncio.sleep(0.2)
        second.start()
        await asyncio.sleep(ttl)
        assert (first.leading, second.leading) == (True, False)

        first_view.cut = True  # a partition between a and the database
        cut_at = loop.time()
        for _ in range(100):
            if second.leading:
                break
            await asyncio.sleep(0.05)
        assert second.leading
        assert not first.leading
        (stopped,) = [t for name, what, t in events if (name, what) == ("a", "stops")]
        (took_over,) = [t for name, what, t in events if (name, what) == ("b", "leads")]
        # a stops on its own clock, before its lease (renewed at most ttl/3 before the cut) ends
        assert stopped - cut_at <= STOP_AT * ttl + ttl / 3 + 0.3
        assert stopped < took_over
        await first.stop()
        await second.stop()
        assert [what for name, what, _ in events if name == "b"] == ["leads", "stops"]

    asyncio.run(main())


def test_a_starting_replica_fails_only_the_runs_of_replicas_that_are_gone(stores: list[SqlStore]) -> None:
    a, b = stores
    now = dt.datetime.now(dt.UTC)
    a.runner, b.runner = "a", "b"
    tokens = {}
    for store, target in ((a, "A1"), (b, "B1")):
        request = store.create_request(
            incident_id=None, site=None, host="iis01", action="audit-tasks", args=(target,),
            target=target, requested_by="slack:U1", ttl=60,
        )  # fmt: skip
        assert store.start_request(request.token) == "started"
        tokens[target] = request.token
    a.touch_replica("a", now)
    b.touch_replica("b", now - dt.timedelta(seconds=60))  # b has not claimed for a minute: gone
    failed = a.fail_interrupted(gone_after=30)
    assert [r.token for r in failed] == [tokens["B1"]]
    running = a.request(tokens["A1"])
    assert running is not None
    assert running.state.value == "running"  # a's own run, alive, untouched
