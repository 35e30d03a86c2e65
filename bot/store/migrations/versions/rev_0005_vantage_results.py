"""Probe agents' rounds and heartbeats.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # the latest round each agent reported for each site, and when each agent last reported
    op.create_table(
        "vantage_results",
        sa.Column("site", sa.Text, primary_key=True),
        sa.Column("vantage", sa.Text, primary_key=True),
        sa.Column("received_at", sa.Text, nullable=False),
        sa.Column("results", sa.Text, nullable=False),
    )
    op.create_table(
        "agent_reports",
        sa.Column("agent", sa.Text, primary_key=True),
        sa.Column("received_at", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("agent_reports")
    op.drop_table("vantage_results")
