"""Durable state in SQLite (WAL): probe results, incidents, action requests and approvals, the
audit log, mutes, and the ids of chat events already handled.

Every state change that must happen once (an approval turning into a run, an incident being
resolved) is a compare-and-set: an UPDATE guarded by the state it expects, so a restart, a
retried request or a second replica can never do it twice.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import secrets
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS probe_results (
    site TEXT NOT NULL, via TEXT NOT NULL, path TEXT NOT NULL, status TEXT NOT NULL,
    checked_at TEXT NOT NULL, result_json TEXT NOT NULL,
    PRIMARY KEY (site, path)
);
CREATE TABLE IF NOT EXISTS incidents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL, site TEXT NOT NULL, state TEXT NOT NULL,
    summary TEXT NOT NULL, opened_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    acked_by TEXT, resolved_at TEXT
);
CREATE TABLE IF NOT EXISTS action_requests (
    token TEXT PRIMARY KEY, incident_id TEXT, site TEXT, host TEXT NOT NULL,
    action TEXT NOT NULL, args_json TEXT NOT NULL, target TEXT NOT NULL,
    state TEXT NOT NULL, requested_by TEXT NOT NULL,
    created_at TEXT NOT NULL, expires_at TEXT NOT NULL, result TEXT
);
CREATE TABLE IF NOT EXISTS approvals (
    token TEXT NOT NULL, principal TEXT NOT NULL, at TEXT NOT NULL,
    PRIMARY KEY (token, principal)
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL,
    event TEXT NOT NULL, subject TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS mutes (site TEXT PRIMARY KEY, until TEXT NOT NULL, by TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS seen_events (
    platform TEXT NOT NULL, event_id TEXT NOT NULL, at TEXT NOT NULL,
    PRIMARY KEY (platform, event_id)
);
"""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Incident:
    id: str
    site: str
    state: str  # open | acked | resolved
    summary: str
    opened_at: str
    updated_at: str
    acked_by: str | None
    resolved_at: str | None

    @property
    def is_open(self) -> bool:
        return self.state != "resolved"


@dataclass(frozen=True)
class ActionRequest:
    token: str
    incident_id: str | None
    site: str | None
    host: str
    action: str
    args: tuple[str, ...]  # positional, as `certops host ACTION HOST ARGS...` takes them
    target: str  # a readable summary of what the action acts on
    state: str  # pending | running | done | failed | refused | expired | superseded
    requested_by: str
    created_at: str
    expires_at: str
    result: str | None


class StoreBusy(Exception):
    """Another certops process uses this database; two would each think they own the runs."""


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        owner = _claim_ownership(self.path)
        # released on close(), or when a store nobody closed is collected
        self._release = weakref.finalize(self, os.close, owner) if owner is not None else (lambda: None)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._migrate()
        self._db.executescript(SCHEMA)

    def _migrate(self) -> None:
        # probe results are only the latest answers: an older layout is dropped, not converted
        columns = [r[1] for r in self._db.execute("PRAGMA table_info(probe_results)").fetchall()]
        if columns and "path" not in columns:
            self._db.execute("DROP TABLE probe_results")

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._release()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._db.execute(sql, args).fetchone()
            return row

    def _all(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    def _run(self, sql: str, *args: Any) -> int:
        with self._lock:
            return self._db.execute(sql, args).rowcount

    # probe results ------------------------------------------------------------------------

    def save_results(self, site: str, results: list[dict[str, Any]]) -> None:
        """Replaces the site's latest results: one per path probed (public, each configured origin),
        so rows for addresses a CDN no longer uses, or origins since removed, do not linger."""
        with self.transaction() as db:
            db.execute("DELETE FROM probe_results WHERE site = ?", (site,))
            for result in results:
                path = f"{result['via']}:{result.get('origin') or ''}:{result['port']}"
                db.execute(
                    "INSERT OR REPLACE INTO probe_results VALUES (?, ?, ?, ?, ?, ?)",
                    (site, result["via"], path, result["status"], result["checked_at"], json.dumps(result)),
                )

    def last_results(self, site: str | None = None) -> list[dict[str, Any]]:
        rows = (
            self._all("SELECT result_json FROM probe_results WHERE site = ? ORDER BY via DESC, path", site)
            if site
            else self._all("SELECT result_json FROM probe_results ORDER BY site, via DESC, path")
        )
        return [json.loads(r["result_json"]) for r in rows]

    # incidents ----------------------------------------------------------------------------

    def open_incident(self, site: str, summary: str) -> Incident:
        """The site's open incident, or a new one: there is never more than one open per site."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT * FROM incidents WHERE site = ? AND state != 'resolved' ORDER BY seq DESC", (site,)
            ).fetchone()
            if row is None:
                now = iso(utcnow())
                cur = db.execute(
                    "INSERT INTO incidents (id, site, state, summary, opened_at, updated_at) "
                    "VALUES ('', ?, 'open', ?, ?, ?)",
                    (site, summary, now, now),
                )
                incident_id = f"INC-{cur.lastrowid:04d}"
                db.execute("UPDATE incidents SET id = ? WHERE seq = ?", (incident_id, cur.lastrowid))
                row = db.execute("SELECT * FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        return _incident(row)

    def incident(self, incident_id: str) -> Incident | None:
        row = self._one("SELECT * FROM incidents WHERE id = ?", incident_id.upper())
        return _incident(row) if row else None

    def open_incidents(self, site: str | None = None) -> list[Incident]:
        rows = (
            self._all("SELECT * FROM incidents WHERE state != 'resolved' AND site = ? ORDER BY seq", site)
            if site
            else self._all("SELECT * FROM incidents WHERE state != 'resolved' ORDER BY seq")
        )
        return [_incident(r) for r in rows]

    def ack_incident(self, incident_id: str, by: str) -> bool:
        return (
            self._run(
                "UPDATE incidents SET state = 'acked', acked_by = ?, updated_at = ? WHERE id = ? AND state = 'open'",
                by,
                iso(utcnow()),
                incident_id,
            )
            == 1
        )

    def resolve_incident(self, incident_id: str) -> bool:
        now = iso(utcnow())
        return (
            self._run(
                "UPDATE incidents SET state = 'resolved', resolved_at = ?, updated_at = ? "
                "WHERE id = ? AND state != 'resolved'",
                now,
                now,
                incident_id,
            )
            == 1
        )

    # action requests and approvals --------------------------------------------------------

    def create_request(
        self,
        *,
        incident_id: str | None,
        site: str | None,
        host: str,
        action: str,
        args: tuple[str, ...],
        target: str,
        requested_by: str,
        ttl: float,
    ) -> ActionRequest:
        token = secrets.token_urlsafe(12)
        now = utcnow()
        with self.transaction() as db:
            # a new proposal for exactly the same thing replaces the old button
            db.execute(
                "UPDATE action_requests SET state = 'superseded' WHERE host = ? AND action = ? "
                "AND args_json = ? AND COALESCE(site, '') = ? AND state = 'pending'",
                (host, action, json.dumps(list(args)), site or ""),
            )
            db.execute(
                "INSERT INTO action_requests VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, NULL)",
                (
                    token,
                    incident_id,
                    site,
                    host,
                    action,
                    json.dumps(list(args)),
                    target,
                    requested_by,
                    iso(now),
                    iso(now + dt.timedelta(seconds=ttl)),
                ),
            )
        request = self.request(token)
        assert request is not None
        return request

    def request(self, token: str) -> ActionRequest | None:
        row = self._one("SELECT * FROM action_requests WHERE token = ?", token)
        if row is None:
            return None
        values = {name: row[name] for name in ActionRequest.__dataclass_fields__ if name != "args"}
        return ActionRequest(**values, args=tuple(json.loads(row["args_json"])))

    def add_approval(self, token: str, principal: str) -> list[str]:
        """Records one approval (once per person) and returns everyone who has approved so far."""
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO approvals VALUES (?, ?, ?)", (token, principal, iso(utcnow())))
            rows = db.execute("SELECT principal FROM approvals WHERE token = ? ORDER BY at, principal", (token,))
            return [r["principal"] for r in rows.fetchall()]

    def start_request(self, token: str) -> str:
        """pending -> running, unless the same action on the same host is running already.

        Returns "started", "busy" (an identical run is under way) or "taken" (not pending)."""
        with self.transaction() as db:
            row = db.execute("SELECT host, action, args_json, state FROM action_requests WHERE token = ?", (token,))
            request = row.fetchone()
            if request is None or request["state"] != "pending":
                return "taken"
            running = db.execute(
                "SELECT args_json FROM action_requests WHERE host = ? AND action = ? AND state = 'running'",
                (request["host"], request["action"]),
            ).fetchall()
            # flags such as --force do not make it another action: one renewal is one renewal
            target = _without_flags(request["args_json"])
            if any(_without_flags(r["args_json"]) == target for r in running):
                return "busy"
            db.execute("UPDATE action_requests SET state = 'running' WHERE token = ?", (token,))
            return "started"

    def fail_interrupted(self) -> list[ActionRequest]:
        """At start: runs a previous process left "running" died with it. They are marked failed
        (whether the host changed is unknown: the next diagnosis will tell), never run again."""
        with self._lock:
            tokens = [r["token"] for r in self._all("SELECT token FROM action_requests WHERE state = 'running'")]
        for token in tokens:
            self.claim_request(token, "running", "failed", "interrupted: certops stopped while it ran")
        return [r for r in (self.request(t) for t in tokens) if r is not None]

    def claim_request(self, token: str, expected: str, new: str, result: str | None = None) -> bool:
        """Moves a request from `expected` to `new` state; False when someone else got there first."""
        return (
            self._run(
                "UPDATE action_requests SET state = ?, result = COALESCE(?, result) WHERE token = ? AND state = ?",
                new,
                result,
                token,
                expected,
            )
            == 1
        )

    # audit --------------------------------------------------------------------------------

    def audit(self, actor: str, event: str, subject: str, outcome: str, detail: str = "") -> None:
        self._run(
            "INSERT INTO audit (at, actor, event, subject, outcome, detail) VALUES (?, ?, ?, ?, ?, ?)",
            iso(utcnow()),
            actor,
            event,
            subject,
            outcome,
            detail,
        )

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._all("SELECT * FROM audit ORDER BY seq DESC LIMIT ?", limit)
        return [dict(r) for r in reversed(rows)]

    # mutes and handled events -------------------------------------------------------------

    def mute(self, site: str, until: dt.datetime, by: str) -> None:
        self._run("INSERT OR REPLACE INTO mutes VALUES (?, ?, ?)", site, iso(until), by)

    def muted_until(self, site: str) -> dt.datetime | None:
        row = self._one("SELECT until FROM mutes WHERE site = ?", site)
        if row is None:
            return None
        until = parse_iso(row["until"])
        return until if until > utcnow() else None

    def prune_seen_events(self, older_than_days: int = 30) -> int:
        """Handled-event ids only guard against redelivery, which platforms stop after minutes."""
        cutoff = iso(utcnow() - dt.timedelta(days=older_than_days))
        return self._run("DELETE FROM seen_events WHERE at < ?", cutoff)

    def first_time(self, platform: str, event_id: str) -> bool:
        """True the first time an event id is seen: a redelivered or replayed event returns False."""
        return self._run("INSERT OR IGNORE INTO seen_events VALUES (?, ?, ?)", platform, event_id, iso(utcnow())) == 1


def _without_flags(args_json: str) -> list[str]:
    return [a for a in json.loads(args_json) if not a.startswith("--")]


def _claim_ownership(path: str) -> int | None:
    """An exclusive lock next to the database for as long as this process uses it (a file
    descriptor: the lock goes with it when the store is closed or the process ends)."""
    if path == ":memory:":
        return None
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreBusy(f"another certops process is using {path}; stop it first") from None
    return fd


def _incident(row: sqlite3.Row) -> Incident:
    return Incident(**{name: row[name] for name in Incident.__dataclass_fields__})
