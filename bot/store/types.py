"""Column types that keep Python values typed while the database sees plain text, the same on
every backend (SQLite now, PostgreSQL later)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import Dialect, Text
from sqlalchemy.types import TypeDecorator

from bot.store.times import from_db, to_db


class UtcDateTime(TypeDecorator[dt.datetime]):
    """An aware UTC datetime stored as fixed-width ISO text (see `times.to_db`), so comparisons
    and ORDER BY in SQL follow time on any backend and collation."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> str | None:
        return None if value is None else to_db(value)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> dt.datetime | None:
        return None if value is None else from_db(str(value))


class JsonText(TypeDecorator[Any]):
    """A JSON document in a text column (lists come back as lists: callers make tuples)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any | None, dialect: Dialect) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(str(value))
