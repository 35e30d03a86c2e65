"""The timestamp text every result, card and stored row carries: always four-digit years, read
back exactly, and never an exception for a date a certificate may carry."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.probe.certinfo import iso_utc, parse_iso_utc
from bot.store.times import from_db, iso, parse_iso, to_db

UTC = dt.UTC
MOMENTS = [
    dt.datetime(1, 1, 1, tzinfo=UTC),
    dt.datetime(51, 1, 1, tzinfo=UTC),
    dt.datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC),
    dt.datetime(1000, 1, 1, tzinfo=UTC),
    dt.datetime(2025, 1, 31, 9, 0, 0, tzinfo=UTC),
    dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
]


@pytest.mark.parametrize("moment", MOMENTS, ids=[m.isoformat() for m in MOMENTS])
def test_every_time_is_written_with_a_four_digit_year_and_read_back_exactly(moment: dt.datetime) -> None:
    text = iso_utc(moment)
    assert len(text) == 20
    assert text[:4] == f"{moment.year:04d}"
    assert parse_iso_utc(text) == moment
    assert parse_iso(iso(moment)) == moment  # the store's names for the same two functions


def test_microseconds_are_dropped_and_an_offset_is_moved_to_utc() -> None:
    moment = dt.datetime(51, 6, 1, 12, 30, 15, 999_999, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert iso_utc(moment) == "0051-06-01T10:30:15Z"
    assert parse_iso_utc(iso_utc(moment)) == moment.replace(microsecond=0)


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (dt.datetime(9999, 12, 31, 23, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5))), "9999-12-31T23:59:59Z"),
        (dt.datetime(1, 1, 1, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=5))), "0001-01-01T00:00:00Z"),
        (dt.datetime.max.replace(tzinfo=dt.timezone(dt.timedelta(hours=-23, minutes=-59))), "9999-12-31T23:59:59Z"),
    ],
    ids=["past year 9999 in UTC", "before year 1 in UTC", "the last moment at the last offset"],
)
def test_a_time_that_leaves_years_1_to_9999_in_utc_is_written_as_the_nearest_not_raised(
    moment: dt.datetime, text: str
) -> None:
    assert iso_utc(moment) == text
    parse_iso_utc(text)  # and it reads back


def test_the_stored_form_of_a_time_before_year_1000_keeps_its_four_digits_and_reads_back() -> None:
    moment = dt.datetime(51, 1, 1, 0, 0, 0, 7, tzinfo=dt.UTC)
    assert to_db(moment) == "0051-01-01T00:00:00.000007Z"
    assert from_db(to_db(moment)) == moment
