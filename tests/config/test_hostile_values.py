"""Config values that used to crash the check or leak a credential: TOML nested 100,000 deep,
numbers of thousands of digits, URLs that carry a password and another mistake, and secrets
pasted where the name of their variable belongs. Each is now one sentence with the key's path."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.config import ConfigError, parse_config
from bot.config.errors import ConfigIssue, mask_credentials
from bot.config.reader import looks_like_a_token, parse_duration

SITE = '[[sites]]\nname = "www"\nurl = "https://www.example.com/"\n'
HOST = '[[hosts]]\nname = "iis01"\naddress = "https://iis01.example.com:5986/wsman"\nusername = "svc"\n'
SLACK = '[chat.slack]\nchannel = "C1"\napp_token_env = "CERTOPS_SLACK_APP_TOKEN"\n'
PASSWORD = "Hunter2-S3cret"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return [str(issue) for issue in caught.value.issues]


@pytest.mark.parametrize(
    "text",
    [
        "a = " + "[" * 100_000,
        "a = " + "{b = " * 100_000,
        "a = " + "[" * 101 + "]" * 101,
    ],
    ids=["arrays", "inline tables", "just over the limit"],
)
def test_toml_nested_too_deep_is_one_sentence_not_a_recursion_error(text: str) -> None:
    assert problems(text) == [
        "line 1: values are nested more than 100 deep; no certops setting needs more than 3 levels, so flatten them"
    ]


@pytest.mark.parametrize("text", ["a" + ".a" * 100_000 + " = 1", "[a" + ".a" * 100_000 + "]"], ids=["key", "header"])
def test_a_dotted_key_of_100000_parts_is_refused_at_once(text: str) -> None:
    started = time.monotonic()  # tomllib alone takes minutes and gigabytes on these
    assert problems(text) == [
        "line 1: a key has more than 100 dotted parts; certops keys have at most 3 (such as chat.slack.channel), "
        "so shorten it"
    ]
    assert time.monotonic() - started < 2


def test_brackets_dots_and_hashes_inside_strings_and_comments_do_not_count_as_nesting() -> None:
    text = (
        SITE
        + 'keyword = "' + "[{." * 200 + '"\n'
        + "# " + "[" * 200 + "\n"
        + "origins = ['" + "[" * 200 + "']\n"
        + '[[maintenance]]\nsites = ["www"]\nreason = """' + '[[[ "quoted" \\""" ' * 50 + '"""\n'
        + 'cron = "0 2 * * sun"\nduration = "2h"\n'
    )  # fmt: skip
    assert [p for p in problems(text) if "nested" in p or "dotted" in p] == []


def test_a_number_of_5000_digits_names_its_line() -> None:
    assert problems(SITE + "warn_days = 1" + "0" * 5000 + "\n") == [
        "line 4: a number has more than 4300 digits; no setting needs one that long, so shorten it"
    ]


def test_a_duration_of_5000_digits_is_an_ordinary_mistake_shown_short() -> None:
    assert parse_duration("9" * 5000 + "s") is None
    assert parse_duration("999999999s") == 999999999.0
    assert problems(SITE + 'interval = "' + "9" * 5000 + 's"\n') == [
        'sites[0].interval: must be a duration such as "30s", "5m" or "1h", got "' + "9" * 60 + '… (5,001 characters)"'
    ]


def test_a_number_too_big_for_a_float_is_out_of_range_not_an_overflow() -> None:
    assert problems(SITE + "interval = 1" + "0" * 400 + "\n") == [
        "sites[0].interval: must be between 5s and 1d, got a number of 401 digits"
    ]
    assert problems(SITE + "warn_days = 1" + "0" * 4000 + "\n") == [
        "sites[0].warn_days: must be at least 0 and at most 3650 days, got a number of 4001 digits"
    ]


def test_control_characters_in_a_value_are_shown_escaped() -> None:
    assert problems(SITE + 'warn_days = "\\u001b[2J"\n') == [
        r'sites[0].warn_days: must be a whole number of days, got "\x1b[2J"'
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f'[bot]\nheartbeat_url = "u:{PASSWORD}@hc-ping.com/abc"\n',
            'bot.heartbeat_url: must be an http:// or https:// URL such as "https://hc-ping.com/YOUR-CHECK-ID", '
            'got "u:***@hc-ping.com/…"',
        ),
        (
            HOST.replace("https://iis01", f"ftp://svc:{PASSWORD}@iis01") + 'password_env = "CERTOPS_PW"\n',
            "hosts[0].address: must not contain a user name or password: secrets never go in the config file",
        ),
        (
            SLACK + f'bot_token_env = "CERTOPS_BOT"\napi_url = "ftp://u:{PASSWORD}@slack.example"\n',
            "chat.slack.api_url: must not contain a user name or password: secrets never go in the config file",
        ),
        (
            f'[[sites]]\nname = "www"\nurl = "https://u:{PASSWORD}@www.example.com:99999/"\n',
            "sites[0].url: must not contain a user name or password: secrets never go in the config file",
        ),
        (
            f'[[sites]]\nname = "www"\nurl = "https://u:ab/{PASSWORD}@www.example.com/"\n',
            'sites[0].url: has an invalid port: "https://u:***@www.example.com/"',
        ),
        (
            SITE + f'origins = ["u:{PASSWORD}@203.0.113.10"]\n',
            'sites[0].origins[0]: must be an address such as "203.0.113.10", "203.0.113.10:8443" or '
            '"[2001:db8::1]:443", got "u:***@203.0.113.10"',
        ),
    ],
    ids=["heartbeat without scheme", "hosts.address", "api_url", "sites.url port", "password with slash", "origins"],
)
def test_a_url_with_a_password_and_another_mistake_never_shows_the_password(text: str, expected: str) -> None:
    found = problems(text)
    assert found == [expected]
    assert PASSWORD not in "\n".join(found)


def test_every_config_message_masks_a_password_in_a_url_whatever_the_message() -> None:
    issue = ConfigIssue("x", f'got "https://svc:{PASSWORD}@iis01/wsman" and "svc:{PASSWORD}@iis01"')
    assert str(issue) == 'x: got "https://svc:***@iis01/wsman" and "svc:***@iis01"'
    assert mask_credentials("https://ghp_abcdef@github.com/x") == "https://***@github.com/x"
    assert mask_credentials("https://u:p@ss@host/") == "https://u:***@host/"
    assert mask_credentials("https://example.com:8443/@team") == "https://example.com:8443/@team"
    assert mask_credentials('must be "slack:U…" or "console:NAME"') == 'must be "slack:U…" or "console:NAME"'


def test_a_token_in_a_urls_query_is_never_shown_in_a_config_message() -> None:
    assert mask_credentials('got "https://h.example/p?api_key=abc123&token=xoxb-1#top"') == (
        'got "https://h.example/p?api_key=***&token=***#top"'
    )
    found = problems('[bot]\nheartbeat_url = "ftp://hc.example/x?token=xoxb-1234567890"\n')
    assert found
    assert "xoxb-1234567890" not in "\n".join(found)


def test_an_unclosed_ipv6_bracket_is_a_sentence_in_every_url_key() -> None:
    fix = 'is not a URL that can be read (an IPv6 address goes in brackets, such as "https://[2001:db8::1]/")'
    assert problems('[bot]\nheartbeat_url = "https://[::1/x"\n') == [f'bot.heartbeat_url: {fix}, got "https://[::1/…"']
    host = HOST.replace("https://iis01.example.com:5986/wsman", "https://[::1/wsman") + 'password_env = "CERTOPS_PW"\n'
    assert problems(host) == [f'hosts[0].address: {fix}, got "https://[::1/wsman"']
    assert problems(SLACK + 'bot_token_env = "CERTOPS_BOT"\napi_url = "https://[x"\n') == [
        f'chat.slack.api_url: {fix}, got "https://[x"'
    ]


@pytest.mark.parametrize(
    ("key", "table", "token"),
    [
        ("bot_token_env", SLACK, "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp"),
        ("bot_token_env", SLACK, "0123456789abcdef0123456789abcdef"),  # fails the name rule too
        ("bot_token_env", SLACK, "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"),  # passes the name rule
        ("bot_token_env", SLACK, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"),
    ],
    ids=["slack bot token", "hex secret", "hex secret that could be a name", "JWT"],
)
def test_a_token_pasted_where_a_variable_name_belongs_is_never_echoed(key: str, table: str, token: str) -> None:
    found = problems(table + f'{key} = "{token}"\n')
    assert found == [
        f"chat.slack.{key}: this looks like a token; give the name of a variable that holds it, "
        f'such as {key} = "CERTOPS_BOT_TOKEN" (the value is not shown here)'
    ]


def test_a_token_pasted_where_a_file_name_belongs_is_never_echoed() -> None:
    token = "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp"
    assert problems(SLACK + f'bot_token_file = "{token}"\n') == [
        "chat.slack.bot_token_file: this looks like a token; give the path of a file that holds it, "
        'such as bot_token_file = "/run/secrets/bot_token" (the value is not shown here)'
    ]


def test_a_value_that_is_no_variable_name_is_refused_without_showing_it() -> None:
    found = problems(HOST + 'password_env = "my pass-word!"\n')
    assert found == [
        'hosts[0].password_env: must be the name of an environment variable: letters, digits and _, not starting '
        'with a digit, such as "CERTOPS_PASSWORD" (what is written there is not shown, in case it is the secret itself)'
    ]  # fmt: skip


def test_ordinary_variable_names_are_not_taken_for_tokens() -> None:
    for name in ("CERTOPS_IIS01_PASSWORD", "IIS01_PASSWORD", "SLACKBOTTOKEN2024", "PASSWORD", "line_token", "X"):
        assert not looks_like_a_token(name), name
    config = parse_config(HOST + 'password_env = "CERTOPS_IIS01_PASSWORD"\n')
    assert config.hosts[0].password is not None


def test_ordinary_secret_file_names_are_not_taken_for_tokens(tmp_path: Path) -> None:
    named = tmp_path / "iis01password2024"
    named.write_text("pw")
    for name in ("iis01-password-2024.txt", "/run/secrets/iis01_password", str(named)):
        assert not looks_like_a_token(name, file_name=True), name
    assert looks_like_a_token("xoxb-1234567890-0987654321-AbCdEf", file_name=True)
