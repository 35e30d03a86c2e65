"""The keys that pace alerts: [bot] digest, zone, heartbeat, reminders and flapping; [[sites]]
thresholds and retries; [[hosts]] check rounds and renewal grace. Each has a default, takes a
good value, and refuses a bad one with its key path and what to write instead."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import tzlocal

from bot.config import BotSettings, ConfigError, Host, Site, TimeOfDay, load_config, parse_config

MINIMAL = '[[sites]]\nname = "www"\nurl = "https://www.example.com/"\n'
HOST = (
    '[[hosts]]\nname = "iis01"\naddress = "https://iis01.example.com:5986/wsman"\nusername = "u"\npassword_env = "P"\n'
)
TOKEN = "0f3c9d1e-7b2a-4c55-9e1d-5a6b7c8d9e0f"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return [str(issue) for issue in caught.value.issues]


def bot(lines: str) -> BotSettings:
    return parse_config(f"[bot]\n{lines}\n").bot


# [bot] -------------------------------------------------------------------------------------------


def test_the_new_bot_keys_have_their_documented_defaults() -> None:
    settings = parse_config("").bot
    assert settings.digest_at == TimeOfDay(9, 0)
    assert str(settings.digest_at) == "09:00"
    assert settings.timezone is None
    assert settings.tz() == tzlocal.get_localzone()
    assert settings.heartbeat_url is None
    assert settings.heartbeat_label() is None
    assert settings.renotify == 4 * 3600.0
    assert settings.flap_limit == 4


def test_a_digest_time_is_read_on_the_24_hour_clock() -> None:
    assert bot('digest_at = "17:30"').digest_at == TimeOfDay(17, 30)
    assert bot('digest_at = "7:05"').digest_at == TimeOfDay(7, 5)
    assert bot('digest_at = "00:00"').digest_at == TimeOfDay(0, 0)
    assert bot("digest_at = 06:45:00").digest_at == TimeOfDay(6, 45)  # a bare TOML time works too


def test_an_empty_digest_time_turns_the_digest_off() -> None:
    assert bot('digest_at = ""').digest_at is None


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ('"25:00"', '"25:00"'),
        ('"9am"', '"9am"'),
        ('"noon"', '"noon"'),
        ('"12:60"', '"12:60"'),
        ('"09:00:30"', '"09:00:30"'),
        ("9", "9"),
        ("06:45:30", "06:45:30"),  # a bare TOML time with seconds: the digest runs on the minute
    ],
)
def test_a_digest_time_that_is_not_hh_mm_is_refused_with_its_key_path(value: str, shown: str) -> None:
    assert problems(f"[bot]\ndigest_at = {value}\n") == [
        'bot.digest_at: must be a time of day "HH:MM" on the 24-hour clock, such as "09:00" or "17:30" '
        f'(or "" to turn the digest off), got {shown}'
    ]


def test_a_timezone_is_an_iana_name_and_tz_returns_that_zone() -> None:
    settings = bot('timezone = "Europe/Berlin"')
    assert settings.timezone == "Europe/Berlin"
    assert settings.tz() == ZoneInfo("Europe/Berlin")


def test_without_a_timezone_tz_is_the_machine_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tzlocal, "get_localzone", lambda: ZoneInfo("Asia/Tokyo"))
    assert parse_config("").bot.tz() == ZoneInfo("Asia/Tokyo")


def test_an_unknown_timezone_is_refused_with_a_did_you_mean_hint() -> None:
    assert problems('[bot]\ntimezone = "Europe/Berln"\n') == [
        'bot.timezone: must be an IANA time zone name such as "Europe/Berlin", "America/New_York" or "UTC" '
        '(leave it out to use this machine\'s zone), got "Europe/Berln" (did you mean "Europe/Berlin"?)'
    ]


def test_a_windows_timezone_name_is_refused_with_the_iana_name_to_write() -> None:
    found = problems('[bot]\ntimezone = "W. Europe Standard Time"\n')
    assert len(found) == 1
    assert found[0].startswith("bot.timezone: must be an IANA time zone name")
    assert found[0].endswith('(that is the Windows name; write "Europe/Berlin")')


def test_a_timezone_that_is_a_path_is_refused() -> None:
    assert problems('[bot]\ntimezone = "../../etc/passwd"\n')[0].startswith("bot.timezone: must be an IANA")


def test_a_heartbeat_url_is_kept_but_never_shown_whole() -> None:
    url = f"https://hc-ping.com/{TOKEN}"
    config = parse_config(f'[bot]\nheartbeat_url = "{url}"\n')
    assert config.bot.heartbeat_url == url
    assert config.bot.heartbeat_label() == "https://hc-ping.com/…"
    assert TOKEN not in repr(config)
    assert (
        bot('heartbeat_url = "http://monitor.example.net:8080/"').heartbeat_label() == "http://monitor.example.net:8080"
    )


def test_a_heartbeat_url_with_a_user_name_or_password_is_refused_without_echoing_it() -> None:
    found = problems(f'[bot]\nheartbeat_url = "https://user:{TOKEN}@hc-ping.com/ping"\n')
    assert found == ["bot.heartbeat_url: must not contain a user name or password: secrets never go in the config file"]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"ftp://hc-ping.com/{TOKEN}", "ftp://hc-ping.com/…"),
        (f"hc-ping.com/{TOKEN}", "hc-ping.com/…"),
        (f"https:///{TOKEN}", "https:/…"),
    ],
)
def test_a_heartbeat_url_that_is_not_http_is_refused_without_its_token(url: str, shown: str) -> None:
    found = problems(f'[bot]\nheartbeat_url = "{url}"\n')
    assert found == [
        'bot.heartbeat_url: must be an http:// or https:// URL such as "https://hc-ping.com/YOUR-CHECK-ID", '
        f'got "{shown}"'
    ]
    assert TOKEN not in found[0]


def test_renotify_is_a_duration_and_an_empty_text_turns_it_off() -> None:
    assert bot('renotify = "30m"').renotify == 1800.0
    assert bot("renotify = 600").renotify == 600.0
    assert bot('renotify = ""').renotify is None


@pytest.mark.parametrize("value", ['"1m"', "0", '"8d"'])
def test_renotify_outside_five_minutes_to_seven_days_is_refused_with_the_way_to_turn_it_off(value: str) -> None:
    assert problems(f"[bot]\nrenotify = {value}\n") == [
        f'bot.renotify: must be between 5m and 7d, got {value} (or "" to turn re-notification off)'
    ]


def test_renotify_that_is_not_a_duration_is_refused() -> None:
    assert problems('[bot]\nrenotify = "often"\n') == [
        'bot.renotify: must be a duration such as "30s", "5m" or "1h", got "often" (or "" to turn re-notification off)'
    ]


def test_flap_limit_is_a_whole_number_of_state_changes_of_at_least_one() -> None:
    assert bot("flap_limit = 6").flap_limit == 6
    assert problems("[bot]\nflap_limit = 0\n") == [
        "bot.flap_limit: must be at least 1 and at most 1000 state changes per hour, got 0"
    ]
    assert problems('[bot]\nflap_limit = "four"\n') == [
        'bot.flap_limit: must be a whole number of state changes per hour, got "four"'
    ]


def test_a_misspelt_new_bot_key_gets_a_did_you_mean_hint() -> None:
    assert problems('[bot]\nrenotfy = "1h"\n') == ['bot.renotfy: unknown key (did you mean "renotify"?)']


# [[sites]] ---------------------------------------------------------------------------------------


def test_the_new_site_keys_have_their_documented_defaults() -> None:
    site = parse_config(MINIMAL).sites[0]
    assert (site.failure_threshold, site.success_threshold, site.retry_interval) == (2, 1, 30.0)
    assert site.interval == 300.0
    assert Site("x", "https://x/", "x", 443, "/").retry_interval == 30.0


def test_thresholds_and_retry_interval_are_read() -> None:
    site = parse_config(
        MINIMAL + 'failure_threshold = 3\nsuccess_threshold = 2\nretry_interval = "10s"\ninterval = "1m"\n'
    ).sites[0]
    assert (site.failure_threshold, site.success_threshold, site.retry_interval, site.interval) == (3, 2, 10.0, 60.0)


def test_an_interval_of_five_seconds_is_allowed_and_its_retries_are_no_slower() -> None:
    site = parse_config(MINIMAL + 'interval = "5s"\n').sites[0]
    assert (site.interval, site.retry_interval) == (5.0, 5.0)


def test_an_interval_under_five_seconds_is_refused() -> None:
    assert problems(MINIMAL + 'interval = "4s"\n') == ['sites[0].interval: must be between 5s and 1d, got "4s"']


def test_a_failure_threshold_of_zero_is_refused_with_the_key_path_and_the_fix() -> None:
    assert problems(MINIMAL + "failure_threshold = 0\n") == [
        "sites[0].failure_threshold: must be at least 1 and at most 100 failing probe rounds in a row, got 0 "
        "(1 opens an incident at the first failing round)"
    ]


def test_a_failure_threshold_that_is_not_a_whole_number_is_refused() -> None:
    assert problems(MINIMAL + 'failure_threshold = "two"\n') == [
        'sites[0].failure_threshold: must be a whole number of failing probe rounds in a row, got "two"'
    ]
    assert problems(MINIMAL + "failure_threshold = 1.5\n") == [
        "sites[0].failure_threshold: must be a whole number of failing probe rounds in a row, got 1.5"
    ]


def test_a_success_threshold_of_zero_is_refused_with_the_key_path_and_the_fix() -> None:
    assert problems(MINIMAL + "success_threshold = 0\n") == [
        "sites[0].success_threshold: must be at least 1 and at most 100 good probe rounds in a row, got 0 "
        "(1 resolves an incident at the first good round)"
    ]


def test_a_retry_interval_under_five_seconds_is_refused() -> None:
    assert problems(MINIMAL + 'retry_interval = "1s"\n') == [
        'sites[0].retry_interval: must be between 5s and 1d, got "1s"'
    ]


def test_a_retry_interval_longer_than_the_sites_interval_is_refused() -> None:
    second = MINIMAL.replace('"www"', '"shop"') + 'interval = "1m"\nretry_interval = "2m"\n'
    assert problems(MINIMAL + second) == ['sites[1].retry_interval: must not be longer than interval (1m), got "2m"']


# [[hosts]] ---------------------------------------------------------------------------------------


def test_the_new_host_keys_have_their_documented_defaults() -> None:
    host = parse_config(HOST).hosts[0]
    assert (host.check_interval, host.renewal_grace) == (3600.0, 2 * 86400.0)
    assert Host("h", "https://h:5986/wsman").check_interval == 3600.0


def test_check_interval_and_renewal_grace_are_read() -> None:
    host = parse_config(HOST + 'check_interval = "15m"\nrenewal_grace = "12h"\n').hosts[0]
    assert (host.check_interval, host.renewal_grace) == (900.0, 43200.0)
    assert parse_config(HOST + "renewal_grace = 0\n").hosts[0].renewal_grace == 0.0


def test_a_check_interval_under_a_minute_is_refused() -> None:
    assert problems(HOST + 'check_interval = "30s"\n') == [
        'hosts[0].check_interval: must be between 1m and 7d, got "30s"'
    ]


def test_a_renewal_grace_that_is_not_a_duration_is_refused() -> None:
    assert problems(HOST + 'renewal_grace = "soon"\n') == [
        'hosts[0].renewal_grace: must be a duration such as "30s", "5m" or "1h", got "soon"'
    ]
    assert problems(HOST + 'renewal_grace = "31d"\n') == [
        'hosts[0].renewal_grace: must be between 0s and 30d, got "31d"'
    ]


def test_the_example_file_writes_each_new_key_with_its_default() -> None:
    example = load_config(Path(__file__).resolve().parents[2] / "deploy" / "certops.example.toml")
    defaults = parse_config(MINIMAL + HOST)
    for key in ("digest_at", "timezone", "heartbeat_url", "renotify", "flap_limit"):
        assert getattr(example.bot, key) == getattr(defaults.bot, key), key
    for key in ("failure_threshold", "success_threshold", "retry_interval", "interval"):
        assert getattr(example.sites[0], key) == getattr(defaults.sites[0], key), key
    for key in ("check_interval", "renewal_grace"):
        assert getattr(example.hosts[0], key) == getattr(defaults.hosts[0], key), key
    assert example.maintenance == ()  # the examples are commented out: a copied file silences nothing


def test_listen_on_port_zero_asks_for_a_free_port_but_origins_still_need_a_real_one() -> None:
    assert bot('listen = "127.0.0.1:0"').listen == "127.0.0.1:0"  # the demo and tests listen this way
    assert problems(MINIMAL + 'origins = ["203.0.113.10:0"]\n')[0].startswith("sites[0].origins[0]: must be an address")
