"""What the core's ports need: typed incidents with their transitions, the outbox, card
references and site health.

Incidents get a subject (the site, for rows from 0.1), a problem ("unknown") and a severity
("critical"), and count as announced: 0.1 posted every incident it opened. Timestamps certops 0.1
wrote to the second are rewritten in the fixed-width form with microseconds, so text order in SQL
stays time order when old and new rows mix.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_OPEN = sa.text("state != 'resolved'")

# columns holding timestamps written by 0.1's iso(): 2025-01-31T09:00:00Z
_TIMESTAMPS = {
    "incidents": ("opened_at", "updated_at", "resolved_at"),
    "action_requests": ("created_at", "expires_at"),
    "approvals": ("at",),
    "audit": ("at",),
    "mutes": ("until",),
    "seen_events": ("at",),
}


def upgrade() -> None:
    _incident_columns()
    _widen_timestamps()
    _new_tables()


def _incident_columns() -> None:
    text = sa.Text
    for name, type_ in [
        ("subject", text),
        ("problem", text),
        ("severity", text),
        ("details", text),
        ("host", text),
        ("failing_since", text),
        ("acted_at", text),
        ("resolution", text),
        ("announced", sa.Boolean),
        ("notified_at", text),
        ("notified_severity", text),
        ("diagnosis", text),
    ]:
        op.add_column("incidents", sa.Column(name, type_, nullable=True))
    incidents = sa.table(
        "incidents",
        *(sa.column(c, sa.Text) for c in ("seq", "site", "subject", "problem", "severity", "details", "diagnosis")),
        *(sa.column(c, sa.Text) for c in ("state", "resolved_at", "updated_at", "resolution")),
        sa.column("announced", sa.Boolean),
    )
    op.execute(
        incidents.update().values(
            subject=incidents.c.site,
            problem="unknown",
            severity="critical",
            details="[]",
            diagnosis="[]",
            announced=True,
        )
    )
    _close_duplicate_open_incidents(incidents)
    with op.batch_alter_table("incidents", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column("site", existing_type=text, nullable=True)  # a host's own incident has no site
        for name in ("subject", "problem", "severity", "details", "diagnosis"):
            batch.alter_column(name, existing_type=text, nullable=False)
        batch.alter_column("announced", existing_type=sa.Boolean, nullable=False)
        batch.create_index(
            "uq_incidents_open_subject", ["subject"], unique=True, sqlite_where=_OPEN, postgresql_where=_OPEN
        )


def _close_duplicate_open_incidents(incidents: sa.TableClause) -> None:
    """0.1 kept one open incident per site in code; the index that now keeps it cannot be built
    over a database where that slipped. The newest stays open, as 0.1 would have used it."""
    newer = incidents.alias("newer")
    op.execute(
        incidents.update()
        .where(
            incidents.c.state != "resolved",
            sa.exists().where(
                newer.c.subject == incidents.c.subject, newer.c.state != "resolved", newer.c.seq > incidents.c.seq
            ),
        )
        .values(
            state="resolved",
            resolved_at=incidents.c.updated_at,
            resolution="closed by the upgrade: a newer incident for the same site was open",
        )
    )


def _widen_timestamps() -> None:
    for table_name, columns in _TIMESTAMPS.items():
        table = sa.table(table_name, *(sa.column(c, sa.Text) for c in columns))
        for name in columns:
            column = table.c[name]
            op.execute(
                table.update()
                .where(sa.func.length(column) == len("2025-01-31T09:00:00Z"))
                .values({name: sa.func.substr(column, 1, 19) + ".000000Z"})
            )


def _new_tables() -> None:
    text, integer = sa.Text, sa.Integer
    op.create_table(
        "incident_transitions",
        sa.Column("seq", integer, primary_key=True, autoincrement=True),
        sa.Column("incident_id", text, nullable=False),
        sa.Column("at", text, nullable=False),
        sa.Column("old_state", text),
        sa.Column("new_state", text, nullable=False),
        sa.Column("step", text, nullable=False),
        sa.Column("reason", text, nullable=False),
        sa.Column("actor", text, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_incident_transitions_incident", "incident_transitions", ["incident_id", "seq"])
    op.create_table(
        "outbox",
        sa.Column("seq", integer, primary_key=True, autoincrement=True),
        sa.Column("platform", text, nullable=False),
        sa.Column("kind", text, nullable=False),
        sa.Column("incident_id", text),
        sa.Column("payload", text, nullable=False),
        sa.Column("state", text, nullable=False),
        sa.Column("attempts", integer, nullable=False),
        sa.Column("created_at", text, nullable=False),
        sa.Column("next_attempt_at", text, nullable=False),
        sa.Column("retry_key", text, nullable=False),
        sa.Column("last_error", text),
        sa.Column("sent_at", text),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_outbox_platform_state", "outbox", ["platform", "state", "seq"])
    op.create_table(
        "card_refs",
        sa.Column("incident_id", text, primary_key=True),
        sa.Column("platform", text, primary_key=True),
        sa.Column("ref", text, nullable=False),
    )
    op.create_table(
        "site_health",
        sa.Column("site", text, primary_key=True),
        sa.Column("failing", sa.Boolean, nullable=False),
        sa.Column("consecutive_failures", integer, nullable=False),
        sa.Column("consecutive_successes", integer, nullable=False),
        sa.Column("first_failure_at", text),
        sa.Column("flips", text, nullable=False),
        sa.Column("last_checked_at", text),
    )
    op.create_index("ix_action_requests_incident", "action_requests", ["incident_id"])
    op.create_index("ix_action_requests_host_action", "action_requests", ["host", "action", "state"])


def downgrade() -> None:
    raise NotImplementedError("certops does not downgrade its database: restore a backup instead")
