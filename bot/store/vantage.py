"""The latest round each probe agent reported for each site, and when each agent last reported
(POST /api/agent/results): what the quorum, the agents' heartbeats and /ssl status read."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select

from bot.core.quorum import VantageResults
from bot.probe import ProbeResult, result_from_json
from bot.store.base import Database
from bot.store.dialect import upsert
from bot.store.schema import agent_reports, vantage_results


class VantageStore(Database):
    def save_vantage_results(
        self, site: str, vantage: str, received_at: dt.datetime, results: Sequence[ProbeResult]
    ) -> None:
        with self._write() as connection:
            upsert(
                connection,
                vantage_results,
                {
                    "site": site,
                    "vantage": vantage,
                    "received_at": received_at,
                    "results": [r.to_json() for r in results],
                },
                keys=("site", "vantage"),
            )

    def vantage_results(self, site: str | None = None) -> list[VantageResults]:
        query = select(vantage_results).order_by(vantage_results.c.site, vantage_results.c.vantage)
        if site is not None:
            query = query.where(vantage_results.c.site == site)
        with self._read() as connection:
            rows = connection.execute(query).all()
        return [
            VantageResults(r.site, r.vantage, r.received_at, tuple(result_from_json(d) for d in r.results))
            for r in rows
        ]

    def save_agent_report(self, agent: str, received_at: dt.datetime) -> None:
        with self._write() as connection:
            upsert(connection, agent_reports, {"agent": agent, "received_at": received_at}, keys=("agent",))

    def agent_reports(self) -> dict[str, dt.datetime]:
        with self._read() as connection:
            rows = connection.execute(select(agent_reports)).all()
        return {r.agent: r.received_at for r in rows}
