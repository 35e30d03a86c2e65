"""Alembic's entry point: runs the revisions on the connection certops hands over, inside the
transaction it already opened (so a failed upgrade leaves the database as it was)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection


def run() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("the store's migrations run from bot.store.migrate, on the store's own connection")
    # batch mode: SQLite changes a column by copying the table; elsewhere it is a plain ALTER
    context.configure(connection=connection, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run()
