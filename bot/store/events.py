"""The audit log, chat events already handled, and mutes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import ColumnElement, or_, select

from bot.core.model import AuditEntry
from bot.store.base import Database
from bot.store.dialect import insert_ignore, upsert
from bot.store.schema import audit, mutes, seen_events
from bot.store.times import iso


class AuditStore(Database):
    def audit(self, actor: str, event: str, subject: str, outcome: str, detail: str = "") -> None:
        with self._write() as connection:
            connection.execute(
                audit.insert().values(
                    at=dt.datetime.now(dt.UTC),
                    actor=actor,
                    event=event,
                    subject=subject,
                    outcome=outcome,
                    detail=detail,
                )
            )

    def audit_log(
        self, limit: int = 100, *, since: dt.datetime | None = None, host: str | None = None, sites: Sequence[str] = ()
    ) -> list[AuditEntry]:
        """The latest `limit` entries, oldest first. `since`: written at or after that moment.
        `host`: only entries about that host (or one of `sites`, the sites it serves): a subject
        that is the name, or ends in it as a word ("repair-store 3A… on iis01", "/ssl audit iis01")."""
        query = select(audit)
        if since is not None:
            query = query.where(audit.c.at >= since)
        if host is not None:
            names = [host, *sites]
            query = query.where(
                or_(*(audit.c.subject == name for name in names), *(_ends_with_word(name) for name in names))
            )
        with self._read() as connection:
            rows = connection.execute(query.order_by(audit.c.seq.desc()).limit(limit)).all()
        return [
            AuditEntry(
                seq=row.seq,
                at=iso(row.at),  # the short form the log has always shown
                actor=row.actor,
                event=row.event,
                subject=row.subject,
                outcome=row.outcome,
                detail=row.detail,
            )
            for row in reversed(rows)
        ]


def _ends_with_word(name: str) -> ColumnElement[bool]:
    escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return audit.c.subject.like(f"% {escaped}", escape="\\")


class EventsStore(Database):
    def first_time(self, platform: str, event_id: str) -> bool:
        with self._write() as connection:
            return insert_ignore(
                connection,
                seen_events,
                {"platform": platform, "event_id": event_id, "at": dt.datetime.now(dt.UTC)},
                keys=("platform", "event_id"),
            )

    def prune_seen_events(self, older_than_days: int = 30) -> int:
        """Handled-event ids only guard against redelivery, which platforms stop after minutes."""
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=older_than_days)
        with self._write() as connection:
            return connection.execute(seen_events.delete().where(seen_events.c.at < cutoff)).rowcount

    def prune_signatures(self, platforms: tuple[str, ...], older_than: float) -> int:
        """The replay guard of signed requests needs a signature only while its timestamp could
        still be accepted (5 minutes either way); the hosts and agents sign one every few seconds."""
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=older_than)
        with self._write() as connection:
            return connection.execute(
                seen_events.delete().where(seen_events.c.platform.in_(platforms), seen_events.c.at < cutoff)
            ).rowcount

    def mute(self, site: str, until: dt.datetime, by: str) -> None:
        with self._write() as connection:
            upsert(connection, mutes, {"site": site, "until": until, "by": by}, keys=("site",))

    def muted_until(self, site: str) -> dt.datetime | None:
        """The stored end of the site's last mute, even if it has passed: the caller's clock decides."""
        with self._read() as connection:
            until: dt.datetime | None = connection.execute(
                select(mutes.c.until).where(mutes.c.site == site)
            ).scalar_one_or_none()
        return until
