"""The latest probe results of each site, and what the probe history says about its health."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence

from sqlalchemy import select
from sqlalchemy.engine import Connection

from bot.core.model import SiteHealth
from bot.probe import ProbeResult, result_from_json
from bot.store.base import Database
from bot.store.dialect import upsert
from bot.store.schema import probe_results, probe_soon, site_health
from bot.store.times import from_db, to_db


class ResultsStore(Database):
    def save_results(self, site: str, results: Sequence[ProbeResult]) -> None:
        """One row per path probed (public, each configured origin), replaced as a whole, so rows
        for addresses a CDN no longer uses, or origins since removed, do not linger."""
        with self._write() as connection:
            _replace_results(connection, site, results)

    def record_round(
        self, site: str, results: Sequence[ProbeResult], count: Callable[[SiteHealth], SiteHealth]
    ) -> tuple[SiteHealth, SiteHealth]:
        """A round in one transaction: the results saved as save_results does, the site's health
        read, counted by `count` and written back. -> (the health before, after). One commit a
        round instead of three: the database's load per probe round is mostly this."""
        with self._write() as connection:
            _replace_results(connection, site, results)
            before = _health(connection, site)
            after = count(before)
            _save_health(connection, after)
        return before, after

    def last_results(self, site: str | None = None) -> list[ProbeResult]:
        # "public" sorts after "origin": descending puts the view from outside first
        query = select(probe_results.c.result_json).order_by(
            probe_results.c.site, probe_results.c.via.desc(), probe_results.c.path
        )
        if site is not None:
            query = query.where(probe_results.c.site == site)
        with self._read() as connection:
            texts = list(connection.execute(query).scalars())
        return [result_from_json(json.loads(text)) for text in texts]

    def site_health(self, site: str) -> SiteHealth:
        with self._read() as connection:
            return _health(connection, site)

    def save_site_health(self, health: SiteHealth) -> None:
        with self._write() as connection:
            _save_health(connection, health)

    def ask_probe_soon(self, site: str, due_at: dt.datetime) -> None:
        with self._write() as connection:
            row = connection.execute(select(probe_soon.c.due_at).where(probe_soon.c.site == site)).first()
            if row is None or row.due_at > due_at:  # the sooner of two asks
                upsert(connection, probe_soon, {"site": site, "due_at": due_at}, keys=("site",))

    def take_probe_soon(self) -> dict[str, dt.datetime]:
        with self._write() as connection:
            rows = connection.execute(select(probe_soon)).all()
            if rows:
                connection.execute(probe_soon.delete().where(probe_soon.c.site.in_([r.site for r in rows])))
        return {r.site: r.due_at for r in rows}


def _replace_results(connection: Connection, site: str, results: Sequence[ProbeResult]) -> None:
    rows = {}
    for result in results:
        data = result.to_json()
        path = f"{data['via']}:{data.get('origin') or ''}:{data['port']}"
        rows[path] = {
            "site": site,
            "via": data["via"],
            "path": path,
            "status": data["status"],
            "checked_at": data["checked_at"],
            "result_json": json.dumps(data),
        }
    connection.execute(probe_results.delete().where(probe_results.c.site == site))
    if rows:  # the last result for a path wins, as INSERT OR REPLACE made it before
        connection.execute(probe_results.insert(), list(rows.values()))


def _health(connection: Connection, site: str) -> SiteHealth:
    row = connection.execute(select(site_health).where(site_health.c.site == site)).first()
    if row is None:
        return SiteHealth(site)
    return SiteHealth(
        site=row.site,
        failing=bool(row.failing),
        consecutive_failures=row.consecutive_failures,
        consecutive_successes=row.consecutive_successes,
        first_failure_at=row.first_failure_at,
        flips=tuple(from_db(text) for text in row.flips),
        last_checked_at=row.last_checked_at,
    )


def _save_health(connection: Connection, health: SiteHealth) -> None:
    upsert(
        connection,
        site_health,
        {
            "site": health.site,
            "failing": health.failing,
            "consecutive_failures": health.consecutive_failures,
            "consecutive_successes": health.consecutive_successes,
            "first_failure_at": health.first_failure_at,
            "flips": [to_db(moment) for moment in health.flips],
            "last_checked_at": health.last_checked_at,
        },
        keys=("site",),
    )
