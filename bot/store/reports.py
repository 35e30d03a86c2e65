"""The latest report of each host's own scripts (Layer 2 and 3)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from bot.core.model import HostReport
from bot.store.base import Database
from bot.store.dialect import upsert
from bot.store.schema import host_reports


class ReportsStore(Database):
    def save_report(self, host: str, kind: str, received_at: dt.datetime, ok: bool, report: dict[str, Any]) -> None:
        with self._write() as connection:
            upsert(
                connection,
                host_reports,
                {"host": host, "kind": kind, "received_at": received_at, "ok": ok, "report": report},
                keys=("host", "kind"),
            )

    def host_reports(self, host: str | None = None) -> list[HostReport]:
        query = select(host_reports).order_by(host_reports.c.host, host_reports.c.kind)
        if host is not None:
            query = query.where(host_reports.c.host == host)
        with self._read() as connection:
            rows = connection.execute(query).all()
        return [HostReport(r.host, r.kind, r.received_at, bool(r.ok), dict(r.report)) for r in rows]
