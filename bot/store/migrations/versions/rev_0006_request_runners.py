"""Request runners and replicas seen.

Which replica runs a request, and when each replica was last seen: with replicas on one
database, a request left "running" is failed as interrupted only once the replica running it is
gone, never because another replica started.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("action_requests", sa.Column("runner", sa.Text, nullable=True))
    op.create_table(
        "replicas",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("seen_at", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("replicas")
    with op.batch_alter_table("action_requests") as batch:
        batch.drop_column("runner")
