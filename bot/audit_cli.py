"""`certops audit`: the audit log on the command line, while `certops run` keeps writing it.

Every request, approval, refusal, run and result is a row in the database's audit log. This
command opens the database as a guest (no lock, no migration: `certops run` owns it, and SQLite
lets a reader in beside the writer), reads, and closes it again. It never creates a database.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import re
import sys
from typing import TYPE_CHECKING

from bot.config import ConfigError, load_config
from bot.config.reader import did_you_mean, parse_duration

if TYPE_CHECKING:
    from bot.core.model import AuditEntry

EXIT_USAGE = 3  # as the other commands: usage errors are UNKNOWN
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
DEFAULT_LIMIT = 200


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "audit",
        help="show the audit log: requests, approvals, refusals, runs and results",
        description="Print the audit log, oldest first (the latest --limit entries). Works while "
        "certops run is running: the database is only read.",
    )
    p.add_argument("-c", "--config", default="certops.toml", help="config file (default certops.toml)")
    p.add_argument(
        "--since",
        metavar="WHEN",
        help='only entries this recent: a duration such as "1d", "2h", "30m", or a date "2026-05-01" '
        'or time "2026-05-01T09:00:00+02:00"',
    )
    p.add_argument("--host", metavar="HOST", help="only entries about this host or the sites it serves")
    p.add_argument("--json", action="store_true", help="print a JSON array of entries")
    p.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"at most this many entries, the latest (default {DEFAULT_LIMIT})",
    )
    p.set_defaults(handler=cmd_audit)


def parse_since(text: str, now: dt.datetime) -> dt.datetime | None:
    """ "1d" -> now minus a day; "2026-05-01" -> its midnight in UTC; an ISO time with its offset
    (or "Z"; without one, UTC). None when the text is none of those."""
    seconds = parse_duration(text)
    if seconds is not None:
        return now - dt.timedelta(seconds=seconds)
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def cmd_audit(args: argparse.Namespace) -> int:
    if args.limit < 1:
        print("certops audit: --limit must be at least 1.", file=sys.stderr)
        return EXIT_USAGE
    since = None
    if args.since is not None:
        since = parse_since(args.since, dt.datetime.now(dt.UTC))
        if since is None:
            print(
                f"certops audit: --since must be a duration such as 1d, 2h or 30m, or a date such as "
                f"2026-05-01, got {args.since!r}",
                file=sys.stderr,
            )
            return EXIT_USAGE
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    sites: list[str] = []
    if args.host is not None:
        if config.host(args.host) is None:
            known = [h.name for h in config.hosts]
            hint = did_you_mean(args.host, known)
            # still read: the log keeps the history of a host that has left the config
            print(f"certops audit: {args.host!r} is not a [[hosts]] entry in {config.source}{hint}", file=sys.stderr)
        sites = [s.name for s in config.sites if s.host == args.host]
    secret = config.bot.database_password
    entries = _read(config.bot.database, args.limit, since, args.host, sites, secret.resolve() if secret else None)
    if entries is None:
        return 2
    if args.json:
        print(json.dumps([dataclasses.asdict(e) for e in entries], indent=2))
    else:
        for entry in entries:
            print(render(entry))
    if not entries:
        print("certops audit: no entries" + (" match" if since or args.host else ""), file=sys.stderr)
    elif len(entries) == args.limit:
        print(
            f"certops audit: the latest {args.limit} entries; --limit or --since shows more or fewer",
            file=sys.stderr,
        )
    return 0


def _read(
    database: str,
    limit: int,
    since: dt.datetime | None,
    host: str | None,
    sites: list[str],
    password: str | None = None,
) -> list[AuditEntry] | None:
    """The entries, or None after a sentence on stderr saying why they cannot be read."""
    # the store's libraries load only for this command
    from sqlalchemy.exc import SQLAlchemyError

    from bot.store import SqlStore, StoreError, resolved_database_path
    from bot.store.location import MEMORY, locate

    where = resolved_database_path(database)
    try:
        location = locate(database, password=password)
    except StoreError as exc:
        print(f"certops audit: {exc}", file=sys.stderr)
        return None
    if location.file is None and location.name == MEMORY:
        print("certops audit: [bot] database is in memory: there is no audit log to read", file=sys.stderr)
        return None
    if location.file is not None and not os.path.exists(location.file):
        print(
            f"certops audit: there is no database at {where} yet (certops run creates it; "
            "is [bot] database the one certops run uses?)",
            file=sys.stderr,
        )
        return None
    try:
        store = SqlStore(
            database, guest=True, password=password
        )  # certops run owns the file: read beside it, take no lock
    except (StoreError, SQLAlchemyError) as exc:
        print(f"certops audit: cannot open {where}: {exc}", file=sys.stderr)
        return None
    try:
        return store.audit_log(limit, since=since, host=host, sites=sites)
    except (StoreError, SQLAlchemyError) as exc:
        reason = getattr(exc, "orig", None) or exc
        print(f"certops audit: cannot read the audit log in {where}: {reason}", file=sys.stderr)
        return None
    finally:
        store.close()


def render(entry: AuditEntry) -> str:
    """One line an operator reads: when, who, what, about what, how it ended, and why."""
    parts = [entry.at, entry.actor, entry.event, entry.subject, entry.outcome]
    if entry.detail:
        parts.append(entry.detail)
    # a subject or detail may quote what someone typed in chat: it must not steer the terminal
    return "  ".join(_CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", part) for part in parts)
