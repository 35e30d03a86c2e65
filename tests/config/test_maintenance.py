"""[[maintenance]] windows: once (start + end) or repeating (cron + duration in [bot] timezone).
They are validated like every other table, and `covers` / `ends_after` hold across DST changes."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from bot.config import Config, ConfigError, Maintenance, parse_config
from bot.config.load import load_config

REPO = Path(__file__).resolve().parents[2]
SITES = (
    '[[sites]]\nname = "www"\nurl = "https://www.example.com/"\n'
    '[[sites]]\nname = "shop"\nurl = "https://shop.example.com/"\n'
)
BERLIN = '[bot]\ntimezone = "Europe/Berlin"\n'
CET = dt.timezone(dt.timedelta(hours=1))
UTC = dt.UTC


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return [str(issue) for issue in caught.value.issues]


def window(lines: str, *, head: str = "") -> Maintenance:
    return parse_config(head + SITES + "[[maintenance]]\n" + lines).maintenance[0]


ONE_OFF = (
    'sites = ["www"]\nreason = "datacenter move"\n'
    'start = "2026-12-24T22:00:00+01:00"\nend = "2026-12-26T06:00:00+01:00"\n'
)
WEEKLY = 'sites = ["*"]\nreason = "patch night"\ncron = "0 2 * * sun"\nduration = "2h"\n'


# reading -----------------------------------------------------------------------------------------


def test_no_maintenance_table_means_no_windows() -> None:
    assert parse_config(SITES).maintenance == ()


def test_a_one_off_window_is_read_with_its_offset() -> None:
    w = window(ONE_OFF)
    assert w.sites == ("www",)
    assert w.reason == "datacenter move"
    assert w.start == dt.datetime(2026, 12, 24, 22, tzinfo=CET)
    assert w.end == dt.datetime(2026, 12, 26, 6, tzinfo=CET)
    assert (w.cron, w.duration) == (None, None)


def test_z_and_bare_toml_date_times_are_read_as_well_as_quoted_offsets() -> None:
    w = window('sites = ["www"]\nreason = "r"\nstart = "2026-12-24T21:00:00Z"\nend = 2026-12-25T05:00:00+00:00\n')
    assert w.start == utc(2026, 12, 24, 21)
    assert w.end == utc(2026, 12, 25, 5)


def test_a_repeating_window_is_read_in_the_bot_timezone() -> None:
    w = window(WEEKLY, head=BERLIN)
    assert (w.sites, w.cron, w.duration) == (("*",), "0 2 * * sun", 7200.0)
    assert str(w.timezone) == "Europe/Berlin"


def test_several_windows_are_kept_in_file_order() -> None:
    config = parse_config(SITES + "[[maintenance]]\n" + ONE_OFF + "[[maintenance]]\n" + WEEKLY)
    assert [w.reason for w in config.maintenance] == ["datacenter move", "patch night"]


# refusing ----------------------------------------------------------------------------------------


def test_an_end_not_after_its_start_is_refused_with_its_key_path() -> None:
    text = SITES + '[[maintenance]]\nsites = ["www"]\nreason = "r"\nstart = "2026-12-24T22:00:00+01:00"\n'
    assert problems(text + 'end = "2026-12-24T21:00:00Z"\n') == [
        "maintenance[0].end: must be after start (2026-12-24T22:00:00+01:00), got 2026-12-24T21:00:00+00:00"
    ]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ('"2026-12-24T22:00:00"', '"2026-12-24T22:00:00"'),  # no offset: whose 22:00?
        ('"2026-12-24"', '"2026-12-24"'),
        ('"Christmas Eve"', '"Christmas Eve"'),
        ("2026-12-24T22:00:00", "2026-12-24 22:00:00"),  # a bare TOML local date-time has no offset either
    ],
)
def test_a_start_without_a_utc_offset_is_refused_with_an_example(value: str, shown: str) -> None:
    text = SITES + f'[[maintenance]]\nsites = ["www"]\nreason = "r"\nstart = {value}\nend = "2026-12-26T06:00:00Z"\n'
    assert problems(text) == [
        'maintenance[0].start: must be a date and time with its UTC offset, such as "2026-12-24T22:00:00+01:00" '
        f'or "2026-12-24T21:00:00Z", got {shown}'
    ]


def test_mixing_both_forms_says_which_keys_belong_together() -> None:
    assert problems(SITES + "[[maintenance]]\n" + ONE_OFF + 'cron = "0 2 * * sun"\nduration = "2h"\n') == [
        "maintenance[0]: use start and end (one window) or cron and duration (a repeating window), not both: "
        'either start = "2026-12-24T22:00:00+01:00" and end = "2026-12-26T06:00:00+01:00", '
        'or cron = "0 2 * * sun" and duration = "2h"'
    ]


def test_a_window_with_neither_form_says_which_keys_to_add() -> None:
    assert problems(SITES + '[[maintenance]]\nsites = ["www"]\nreason = "r"\n') == [
        'maintenance[0]: needs start and end (one window, such as start = "2026-12-24T22:00:00+01:00" and '
        'end = "2026-12-26T06:00:00+01:00") or cron and duration (a repeating window, such as '
        'cron = "0 2 * * sun" and duration = "2h")'
    ]


def test_half_a_form_names_the_missing_key() -> None:
    base = SITES + '[[maintenance]]\nsites = ["www"]\nreason = "r"\n'
    assert problems(base + 'start = "2026-12-24T22:00:00Z"\n') == [
        'maintenance[0].end: is required with start, such as start = "2026-12-24T22:00:00+01:00" and '
        'end = "2026-12-26T06:00:00+01:00"'
    ]
    assert problems(base + 'cron = "0 2 * * sun"\n') == [
        'maintenance[0].duration: is required with cron: how long each window lasts, such as "2h"'
    ]
    assert problems(base + 'duration = "2h"\n') == [
        'maintenance[0].cron: is required with duration, such as cron = "0 2 * * sun" and duration = "2h"'
    ]


def test_an_unknown_site_name_is_refused_with_a_did_you_mean_hint() -> None:
    assert problems(SITES + "[[maintenance]]\n" + ONE_OFF.replace('["www"]', '["www", "shp"]')) == [
        'maintenance[0].sites[1]: names no [[sites]] entry: "shp" (did you mean "shop"?)'
    ]
    assert problems(SITES + "[[maintenance]]\n" + ONE_OFF.replace('["www"]', '["intranet"]')) == [
        'maintenance[0].sites[0]: names no [[sites]] entry: "intranet" (known sites: www, shop)'
    ]


@pytest.mark.parametrize(
    ("sites", "message"),
    [
        ("[]", 'must name at least one [[sites]] entry, or be ["*"] for every site'),
        ('["*", "www"]', '"*" already means every site: write ["*"] alone, or list site names'),
        ('"www"', 'must be a list such as ["a", "b"], got "www"'),
    ],
)
def test_a_site_list_that_cannot_work_is_refused(sites: str, message: str) -> None:
    assert problems(SITES + "[[maintenance]]\n" + ONE_OFF.replace('["www"]', sites)) == [
        f"maintenance[0].sites: {message}"
    ]


def test_sites_and_reason_are_required() -> None:
    text = SITES + '[[maintenance]]\ncron = "0 2 * * sun"\nduration = "2h"\n'
    assert problems(text) == [
        'maintenance[0].sites: is required: the names of the [[sites]] this window covers, or ["*"] for every site',
        'maintenance[0].reason: is required (shown in chat, e.g. "monthly patching")',
    ]


@pytest.mark.parametrize(
    ("rule", "detail"),
    [
        ("0 25 * * sun", "Error validating expression '25': the last value (25) is higher than the maximum value (23)"),
        ("0 2 * *", "Wrong number of fields; got 4, expected 5"),
        ("0 2 * * sunday", 'Invalid weekday name "sunday"'),
    ],
)
def test_a_crontab_rule_apscheduler_cannot_read_is_refused_with_its_reason(rule: str, detail: str) -> None:
    assert problems(SITES + "[[maintenance]]\n" + WEEKLY.replace("0 2 * * sun", rule)) == [
        'maintenance[0].cron: must be a crontab rule "MINUTE HOUR DAY MONTH WEEKDAY" such as "0 2 * * sun" '
        f'(02:00 every Sunday), got "{rule}": {detail}'
    ]


@pytest.mark.parametrize("rule", ["0 2 * * 0", "0 2 * * 1-5", "0 2 * * sun,3"])
def test_a_day_of_the_week_number_is_refused_because_crontab_and_apscheduler_disagree(rule: str) -> None:
    assert problems(SITES + "[[maintenance]]\n" + WEEKLY.replace("0 2 * * sun", rule)) == [
        "maintenance[0].cron: write the day of the week as a name (sun, mon, tue, wed, thu, fri, sat, or a range "
        f'such as mon-fri): day numbers mean different days to crontab and to certops, got "{rule}"'
    ]


def test_day_names_ranges_and_steps_are_accepted() -> None:
    assert window(WEEKLY.replace("0 2 * * sun", "30 1 * * mon-fri")).cron == "30 1 * * mon-fri"
    assert window(WEEKLY.replace("0 2 * * sun", "0 */6 * * *")).cron == "0 */6 * * *"


def test_a_rule_that_never_fires_is_refused() -> None:
    assert problems(SITES + "[[maintenance]]\n" + WEEKLY.replace("0 2 * * sun", "0 2 30 2 *")) == [
        'maintenance[0].cron: never matches a date (such as February 30), got "0 2 30 2 *"'
    ]


@pytest.mark.parametrize("duration", ['"8d"', '"30s"'])
def test_a_duration_outside_one_minute_to_seven_days_is_refused(duration: str) -> None:
    assert problems(SITES + "[[maintenance]]\n" + WEEKLY.replace('"2h"', duration)) == [
        f"maintenance[0].duration: must be between 1m and 7d, got {duration}"
    ]


def test_a_misspelt_key_in_a_window_gets_a_did_you_mean_hint() -> None:
    assert problems(SITES + "[[maintenance]]\n" + WEEKLY + 'reasons = "x"\n') == [
        'maintenance[0].reasons: unknown key (did you mean "reason"?)'
    ]


def test_maintenance_written_as_one_table_is_refused() -> None:
    assert problems(SITES + "[maintenance]\n" + WEEKLY) == [
        "maintenance: must be written as [[maintenance]] tables, got a table"
    ]


def test_a_config_with_mistakes_everywhere_raises_one_error_listing_them_all_and_builds_nothing() -> None:
    text = (
        '[bot]\ndigest_at = "noon"\ntimezone = "Mars/Olympus"\nrenotify = "1m"\nflap_limit = 0\n'
        + SITES
        + 'failure_threshold = 0\nretry_interval = "1h"\n'
        + '[[hosts]]\nname = "iis01"\naddress = "https://iis01:5986/wsman"\nusername = "u"\npassword_env = "P"\n'
        + 'check_interval = "1s"\n'
        + '[[maintenance]]\nsites = ["wwww"]\nreason = "r"\n'
        + 'start = "2026-12-24T22:00:00Z"\nend = "2026-12-24T21:00:00Z"\n'
        + '[[maintenance]]\nsites = ["*"]\nreason = "r"\ncron = "0 2 * * 0"\nduration = "2h"\nstart = "x"\n'
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    paths = [issue.path for issue in caught.value.issues]
    assert paths == [
        "bot.digest_at",
        "bot.timezone",
        "bot.renotify",
        "bot.flap_limit",
        "hosts[0].check_interval",
        "sites[1].failure_threshold",
        "sites[1].retry_interval",
        "maintenance[0].sites[0]",
        "maintenance[0].end",
        "maintenance[1]",
    ]
    assert caught.value.render().startswith("certops.toml: 10 problems\n  bot.digest_at: must be a time of day")


# covers / ends_after -----------------------------------------------------------------------------


def test_a_one_off_window_covers_its_sites_from_start_until_just_before_end() -> None:
    w = window(ONE_OFF)
    start, end = utc(2026, 12, 24, 21), utc(2026, 12, 26, 5)
    assert not w.covers("www", start - dt.timedelta(microseconds=1))
    assert w.covers("www", start)
    assert w.covers("www", end - dt.timedelta(microseconds=1))
    assert not w.covers("www", end)
    assert not w.covers("shop", start)


def test_ends_after_is_the_close_of_the_open_window_in_utc_or_none() -> None:
    w = window(ONE_OFF)
    assert w.ends_after(utc(2026, 12, 25, 12)) == utc(2026, 12, 26, 5)
    assert w.ends_after(utc(2026, 12, 25, 12)).tzinfo is UTC  # type: ignore[union-attr]
    assert w.ends_after(utc(2026, 12, 26, 5)) is None
    assert w.ends_after(utc(2026, 12, 1)) is None


def test_a_star_window_covers_every_site() -> None:
    w = window(WEEKLY, head=BERLIN)
    sunday_0230_cet = dt.datetime(2026, 12, 6, 1, 30, tzinfo=UTC)
    assert w.covers("www", sunday_0230_cet)
    assert w.covers("a-site-added-later", sunday_0230_cet)


def test_a_weekly_window_covers_the_two_hours_after_each_sunday_0200_in_berlin() -> None:
    w = window(WEEKLY, head=BERLIN)
    opens = utc(2026, 12, 6, 1)  # Sunday 02:00 CET
    assert not w.covers("www", opens - dt.timedelta(seconds=1))
    assert w.covers("www", opens)
    assert w.covers("www", opens + dt.timedelta(hours=1, minutes=59, seconds=59))
    assert not w.covers("www", opens + dt.timedelta(hours=2))
    assert not w.covers("www", utc(2026, 12, 7, 1, 30))  # Monday
    assert w.ends_after(opens + dt.timedelta(minutes=30)) == opens + dt.timedelta(hours=2)
    assert w.ends_after(opens + dt.timedelta(hours=2)) is None


def test_a_weekly_window_keeps_its_local_time_across_the_spring_dst_change() -> None:
    # Berlin moves from CET (+1) to CEST (+2) at 01:00 UTC on Sunday 2026-03-29
    w = window(WEEKLY.replace("0 2 * * sun", "0 3 * * sun"), head=BERLIN)
    assert w.covers("www", utc(2026, 3, 22, 2, 30))  # 03:30 CET, the week before
    assert not w.covers("www", utc(2026, 3, 22, 1, 30))
    assert w.covers("www", utc(2026, 3, 29, 1, 30))  # 03:30 CEST: an hour earlier in UTC
    assert not w.covers("www", utc(2026, 3, 29, 0, 59))
    # the duration is elapsed time: two real hours, not two hours on a wall clock that jumped
    assert w.ends_after(utc(2026, 3, 29, 1, 30)) == utc(2026, 3, 29, 3)
    assert not w.covers("www", utc(2026, 3, 29, 3))


def test_a_weekly_window_keeps_its_local_time_across_the_autumn_dst_change() -> None:
    # Berlin moves from CEST (+2) back to CET (+1) at 01:00 UTC on Sunday 2026-10-25
    w = window(WEEKLY.replace("0 2 * * sun", "0 3 * * sun"), head=BERLIN)
    assert w.covers("www", utc(2026, 10, 18, 1, 30))  # 03:30 CEST
    assert not w.covers("www", utc(2026, 10, 25, 1, 30))  # 02:30 CET: not yet 03:00 on the wall clock
    assert w.covers("www", utc(2026, 10, 25, 2))  # 03:00 CET
    assert w.ends_after(utc(2026, 10, 25, 2)) == utc(2026, 10, 25, 4)


def test_a_weekly_window_whose_start_the_spring_change_skips_still_opens() -> None:
    # 02:30 does not exist in Berlin on 2026-03-29; the patch night must not be lost with it
    w = window(WEEKLY.replace("0 2 * * sun", "30 2 * * sun"), head=BERLIN)
    assert w.covers("www", utc(2026, 3, 29, 1, 45))


def test_a_rule_that_fires_more_often_than_its_duration_ends_with_the_latest_opening() -> None:
    w = window(WEEKLY.replace("0 2 * * sun", "0 * * * *"), head='[bot]\ntimezone = "UTC"\n')
    assert w.covers("www", utc(2026, 12, 6, 10, 30))
    assert w.ends_after(utc(2026, 12, 6, 10, 30)) == utc(2026, 12, 6, 12)


def test_covers_and_ends_after_refuse_a_naive_now() -> None:
    naive = dt.datetime(2026, 12, 25, 12)
    for w in (window(ONE_OFF), window(WEEKLY)):
        with pytest.raises(ValueError, match="timezone-aware"):
            w.covers("www", naive)
        with pytest.raises(ValueError, match="timezone-aware"):
            w.ends_after(naive)


def test_a_window_built_in_code_needs_exactly_one_form() -> None:
    with pytest.raises(ValueError, match="start and end, or cron and duration"):
        Maintenance(("*",), "nothing")
    with pytest.raises(ValueError, match="start and end, or cron and duration"):
        Maintenance(("*",), "both", utc(2026, 1, 1), utc(2026, 1, 2), "0 2 * * sun", 3600.0)
    assert Maintenance(("*",), "code", cron="0 2 * * sun", duration=3600.0).covers("x", utc(2026, 12, 6, 2, 30))


def test_the_config_finds_the_window_that_holds_a_site_back() -> None:
    config: Config = parse_config(SITES + "[[maintenance]]\n" + ONE_OFF + "[[maintenance]]\n" + WEEKLY)
    christmas = utc(2026, 12, 25, 12)
    found = config.in_maintenance("www", christmas)
    assert found is not None
    assert found.reason == "datacenter move"
    assert config.in_maintenance("shop", christmas) is None


# the example file --------------------------------------------------------------------------------


def test_the_example_maintenance_windows_are_valid_once_uncommented(tmp_path: Path) -> None:
    text = (REPO / "deploy" / "certops.example.toml").read_text(encoding="utf-8")
    blocks = re.findall(r"^# \[\[maintenance\]\]\n(?:# .*\n?)+", text, flags=re.MULTILINE)
    assert len(blocks) == 2
    uncommented = text + "\n" + "".join(re.sub(r"^# ", "", b, flags=re.MULTILINE) for b in blocks)
    (tmp_path / "certops.toml").write_text(uncommented, encoding="utf-8")
    config = load_config(tmp_path / "certops.toml")
    one_off, weekly = config.maintenance
    assert (one_off.sites, one_off.start is not None) == (("www", "shop"), True)
    assert (weekly.sites, weekly.cron, weekly.duration) == (("*",), "0 2 * * sun", 7200.0)
