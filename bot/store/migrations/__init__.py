"""The store's Alembic environment. certops runs it itself at open (`bot.store.migrate`), on the
store's own connection; there is no alembic.ini and no `alembic` command to run by hand."""
