"""The schema of certops 0.1 (bot/store.py's SCHEMA before the store moved to SQLAlchemy).

Like that code's CREATE TABLE IF NOT EXISTS, a table already there is left alone: a database made
by certops 0.1 is adopted as it is, and one made by an earlier build gets the tables it lacks.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _tables() -> list[sa.Table]:
    m = sa.MetaData()
    text, integer = sa.Text, sa.Integer
    return [
        sa.Table("meta", m, sa.Column("key", text, primary_key=True), sa.Column("value", text, nullable=False)),
        sa.Table(
            "probe_results",
            m,
            sa.Column("site", text, primary_key=True),
            sa.Column("via", text, nullable=False),
            sa.Column("path", text, primary_key=True),
            sa.Column("status", text, nullable=False),
            sa.Column("checked_at", text, nullable=False),
            sa.Column("result_json", text, nullable=False),
        ),
        sa.Table(
            "incidents",
            m,
            sa.Column("seq", integer, primary_key=True, autoincrement=True),
            sa.Column("id", text, unique=True, nullable=False),
            sa.Column("site", text, nullable=False),
            sa.Column("state", text, nullable=False),
            sa.Column("summary", text, nullable=False),
            sa.Column("opened_at", text, nullable=False),
            sa.Column("updated_at", text, nullable=False),
            sa.Column("acked_by", text),
            sa.Column("resolved_at", text),
            sqlite_autoincrement=True,
        ),
        sa.Table(
            "action_requests",
            m,
            sa.Column("token", text, primary_key=True),
            sa.Column("incident_id", text),
            sa.Column("site", text),
            sa.Column("host", text, nullable=False),
            sa.Column("action", text, nullable=False),
            sa.Column("args_json", text, nullable=False),
            sa.Column("target", text, nullable=False),
            sa.Column("state", text, nullable=False),
            sa.Column("requested_by", text, nullable=False),
            sa.Column("created_at", text, nullable=False),
            sa.Column("expires_at", text, nullable=False),
            sa.Column("result", text),
        ),
        sa.Table(
            "approvals",
            m,
            sa.Column("token", text, primary_key=True),
            sa.Column("principal", text, primary_key=True),
            sa.Column("at", text, nullable=False),
        ),
        sa.Table(
            "audit",
            m,
            sa.Column("seq", integer, primary_key=True, autoincrement=True),
            sa.Column("at", text, nullable=False),
            sa.Column("actor", text, nullable=False),
            sa.Column("event", text, nullable=False),
            sa.Column("subject", text, nullable=False),
            sa.Column("outcome", text, nullable=False),
            sa.Column("detail", text, nullable=False),
            sqlite_autoincrement=True,
        ),
        sa.Table(
            "mutes",
            m,
            sa.Column("site", text, primary_key=True),
            sa.Column("until", text, nullable=False),
            sa.Column("by", text, nullable=False),
        ),
        sa.Table(
            "seen_events",
            m,
            sa.Column("platform", text, primary_key=True),
            sa.Column("event_id", text, primary_key=True),
            sa.Column("at", text, nullable=False),
        ),
    ]


def upgrade() -> None:
    bind = op.get_bind()
    present = set(sa.inspect(bind).get_table_names())
    for table in _tables():
        if table.name not in present:
            table.create(bind)


def downgrade() -> None:
    raise NotImplementedError("certops does not downgrade its database: restore a backup instead")
