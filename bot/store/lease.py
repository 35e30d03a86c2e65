"""The leader lease: one row that says which replica leads until when (bot.leader)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import case, or_, select
from sqlalchemy.engine import Connection

from bot.core.model import Lease
from bot.store.base import Database
from bot.store.dialect import insert_ignore, upsert
from bot.store.schema import leader_lease, replicas

LEADER = "leader"


class LeaseStore(Database):
    def claim_lease(self, holder: str, now: dt.datetime, ttl: float) -> Lease | None:
        """Takes or renews the lease for `ttl` seconds from `now`: the lease when `holder` has it
        now, None when another replica's lease has not run out. One compare-and-set, so two
        replicas can never both succeed for the same moment."""
        until = now + dt.timedelta(seconds=ttl)
        row = leader_lease.c
        with self._write() as connection:
            # every replica's claim says it is alive, leader or not: its runs are not orphans
            _seen(connection, holder, now)
            moved = connection.execute(
                leader_lease.update()
                .where(row.name == LEADER, or_(row.holder == holder, row.expires_at <= now))
                .values(
                    holder=holder,
                    expires_at=until,
                    term=case((row.holder == holder, row.term), else_=row.term + 1),
                )
            ).rowcount
            if not moved and not insert_ignore(
                connection,
                leader_lease,
                {"name": LEADER, "holder": holder, "term": 1, "expires_at": until},
                keys=("name",),
            ):
                return None
            found = connection.execute(select(leader_lease).where(row.name == LEADER)).one()
        return Lease(found.holder, found.term, found.expires_at)

    def touch_replica(self, holder: str, now: dt.datetime) -> None:
        """Says this replica is alive before its first claim (the elector's claims say it after)."""
        with self._write() as connection:
            _seen(connection, holder, now)

    def release_lease(self, holder: str, now: dt.datetime) -> None:
        """Gives the lease up at once (a clean stop), so the next replica need not wait it out."""
        row = leader_lease.c
        with self._write() as connection:
            connection.execute(
                leader_lease.update().where(row.name == LEADER, row.holder == holder).values(expires_at=now)
            )

    def lease(self) -> Lease | None:
        with self._read() as connection:
            found = connection.execute(select(leader_lease).where(leader_lease.c.name == LEADER)).first()
        return None if found is None else Lease(found.holder, found.term, found.expires_at)


def _seen(connection: Connection, holder: str, now: dt.datetime) -> None:
    upsert(connection, replicas, {"id": holder, "seen_at": now}, keys=("id",))
