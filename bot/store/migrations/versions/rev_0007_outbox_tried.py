"""When an outbox message was first handed to its platform.

A message tried before and still pending may have reached the platform even though no answer
came back (the replica died, the call timed out): the next attempt looks for it before posting
it again.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("tried_at", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("tried_at")
