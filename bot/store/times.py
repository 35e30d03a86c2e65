"""Clock and timestamp text: the formats callers see, and the one the database stores."""

from __future__ import annotations

import datetime as dt

from bot.probe.certinfo import iso_utc, parse_iso_utc


def utcnow() -> dt.datetime:
    """Now, to the second: what callers show and compare."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


# the short form callers show and parse (2025-01-31T09:00:00Z), the same as the probe's
iso = iso_utc
parse_iso = parse_iso_utc


def to_db(moment: dt.datetime) -> str:
    """The stored form: fixed width, with microseconds, so text order in SQL is time order
    (2025-01-31T09:00:00.000000Z). A naive datetime is a bug upstream: refused, not guessed."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"the store takes timezone-aware datetimes, not {moment!r}")
    utc = moment.astimezone(dt.UTC)
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S.%f}Z"  # %Y leaves years before 1000 unpadded


def from_db(text: str) -> dt.datetime:
    """Reads the stored form, and the short form older rows were written in."""
    return parse_iso(text).astimezone(dt.UTC)
