"""Schema revisions, written by hand. Each spells out its own tables: none imports
`bot.store.schema`, which describes only the newest."""
