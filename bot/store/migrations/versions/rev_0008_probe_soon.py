"""Sites to probe soon, asked for by a replica that does not lead.

A probe agent's results or an /ssl heal can land on any replica; the round they call for runs on
the leader's scheduler, which takes these rows up.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "probe_soon",
        sa.Column("site", sa.Text, primary_key=True),
        sa.Column("due_at", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("probe_soon")
