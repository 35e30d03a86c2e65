"""Every table, as the newest migration leaves it (a test checks the two agree).

Migrations never import this module: each revision spells out its own tables, frozen in time.
Enums are stored as their string values, datetimes as `UtcDateTime` text, lists and documents as
`JsonText`. Nothing here is specific to one backend except the `*_where` of a partial index,
given for each dialect that supports it.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, Integer, MetaData, Table, Text, text

from bot.store.types import JsonText, UtcDateTime

metadata = MetaData()

# unused since 0.1 but kept: 0001 made it, and dropping it buys nothing
meta = Table(
    "meta",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

probe_results = Table(
    "probe_results",
    metadata,
    Column("site", Text, primary_key=True),
    Column("via", Text, nullable=False),
    Column("path", Text, primary_key=True),  # "via:origin:port", one row per path probed
    Column("status", Text, nullable=False),
    Column("checked_at", Text, nullable=False),  # the result's own text, as the probe wrote it
    Column("result_json", Text, nullable=False),
)

_OPEN = text("state != 'resolved'")

incidents = Table(
    "incidents",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", Text, nullable=False, unique=True),
    Column("site", Text),
    Column("state", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("acked_by", Text),
    Column("resolved_at", UtcDateTime),
    Column("subject", Text, nullable=False),
    Column("problem", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("details", JsonText, nullable=False),
    Column("host", Text),
    Column("failing_since", UtcDateTime),
    Column("acted_at", UtcDateTime),
    Column("resolution", Text),
    Column("announced", Boolean, nullable=False),
    Column("notified_at", UtcDateTime),
    Column("notified_severity", Text),
    Column("diagnosis", JsonText, nullable=False),
    # the database itself keeps "one open incident per subject", whatever threads or replicas do
    Index("uq_incidents_open_subject", "subject", unique=True, sqlite_where=_OPEN, postgresql_where=_OPEN),
    sqlite_autoincrement=True,  # ids are never reused, even after the newest row went away
)

incident_transitions = Table(
    "incident_transitions",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("old_state", Text),  # None for the opening
    Column("new_state", Text, nullable=False),
    Column("step", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Index("ix_incident_transitions_incident", "incident_id", "seq"),
    sqlite_autoincrement=True,
)

action_requests = Table(
    "action_requests",
    metadata,
    Column("token", Text, primary_key=True),
    Column("incident_id", Text),
    Column("site", Text),
    Column("host", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("args_json", Text, nullable=False),  # text, not JsonText: compared as text to find "the same thing"
    Column("target", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("requested_by", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("result", Text),
    # the replica that claimed it to run (bot.leader.replica_id); None: single-process SQLite, or before 0006
    Column("runner", Text),
    Index("ix_action_requests_incident", "incident_id"),
    Index("ix_action_requests_host_action", "host", "action", "state"),
)

approvals = Table(
    "approvals",
    metadata,
    Column("token", Text, primary_key=True),
    Column("principal", Text, primary_key=True),
    Column("at", UtcDateTime, nullable=False),
)

audit = Table(
    "audit",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", Text, nullable=False),
    Column("event", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("detail", Text, nullable=False),
    sqlite_autoincrement=True,
)

mutes = Table(
    "mutes",
    metadata,
    Column("site", Text, primary_key=True),
    Column("until", UtcDateTime, nullable=False),
    Column("by", Text, nullable=False),
)

seen_events = Table(
    "seen_events",
    metadata,
    Column("platform", Text, primary_key=True),
    Column("event_id", Text, primary_key=True),
    Column("at", UtcDateTime, nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("platform", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("incident_id", Text),
    Column("payload", JsonText, nullable=False),
    Column("state", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("retry_key", Text, nullable=False),
    Column("last_error", Text),
    Column("sent_at", UtcDateTime),
    # when an attempt first began; pending with this set: it may have reached the platform unanswered
    Column("tried_at", UtcDateTime),
    Index("ix_outbox_platform_state", "platform", "state", "seq"),
    sqlite_autoincrement=True,  # seq is the delivery order: never reused
)

card_refs = Table(
    "card_refs",
    metadata,
    Column("incident_id", Text, primary_key=True),
    Column("platform", Text, primary_key=True),
    Column("ref", Text, nullable=False),
)

site_health = Table(
    "site_health",
    metadata,
    Column("site", Text, primary_key=True),
    Column("failing", Boolean, nullable=False),
    Column("consecutive_failures", Integer, nullable=False),
    Column("consecutive_successes", Integer, nullable=False),
    Column("first_failure_at", UtcDateTime),
    Column("flips", JsonText, nullable=False),  # ISO texts, oldest first
    Column("last_checked_at", UtcDateTime),
)

host_reports = Table(
    "host_reports",
    metadata,
    Column("host", Text, primary_key=True),
    Column("kind", Text, primary_key=True),  # "self-heal" or "post-renew": the latest of each
    Column("received_at", UtcDateTime, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("report", JsonText, nullable=False),  # the report as bot.reports.model.Report.to_json() wrote it
)

leader_lease = Table(
    "leader_lease",
    metadata,
    Column("name", Text, primary_key=True),  # "leader": one row
    Column("holder", Text, nullable=False),  # the replica's id (host name, pid, a random part)
    Column("term", Integer, nullable=False),  # +1 each time the lease changes hands
    Column("expires_at", UtcDateTime, nullable=False),
)

vantage_results = Table(
    "vantage_results",
    metadata,
    Column("site", Text, primary_key=True),
    Column("vantage", Text, primary_key=True),  # the [[agents]] name that probed it
    Column("received_at", UtcDateTime, nullable=False),
    Column("results", JsonText, nullable=False),  # ProbeResult.to_json() of each path, as the agent sent them
)

# a round asked for on a replica that does not lead (agents' results, /ssl heal): the leader runs it
probe_soon = Table(
    "probe_soon",
    metadata,
    Column("site", Text, primary_key=True),
    Column("due_at", UtcDateTime, nullable=False),
)

agent_reports = Table(
    "agent_reports",
    metadata,
    Column("agent", Text, primary_key=True),
    Column("received_at", UtcDateTime, nullable=False),  # its latest accepted POST /api/agent/results
)

replicas = Table(
    "replicas",
    metadata,
    Column("id", Text, primary_key=True),  # bot.leader.replica_id()
    Column("seen_at", UtcDateTime, nullable=False),  # its last lease claim or renewal attempt
)
