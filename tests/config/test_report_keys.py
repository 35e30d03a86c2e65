"""The keys of the hosts' reports: [bot] public_url and log_format, [[hosts]] report_secret_env /
report_secret_file and report_interval."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, parse_config

HOST = (
    '[[hosts]]\nname = "iis01"\naddress = "https://iis01.example.test:5986/wsman"\n'
    'username = "svc"\npassword_env = "PW"\n'
)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "t.toml")
    return [str(issue) for issue in caught.value.issues]


def test_the_defaults_report_hourly_with_no_secret_and_no_public_url() -> None:
    config = parse_config(HOST, "t.toml")
    host = config.hosts[0]
    assert (host.report_secret, host.report_interval, host.report_url) == (None, 3600.0, None)
    assert (config.bot.public_url, config.bot.log_format) == (None, "logfmt")


def test_the_keys_are_read_when_given() -> None:
    text = (
        '[bot]\npublic_url = "https://certops.example.test/"\nlog_format = "json"\n'
        + HOST
        + 'report_secret_file = "/run/credentials/certops.service/iis01-report"\nreport_interval = "10s"\n'
    )
    config = parse_config(text, "t.toml")
    host = config.hosts[0]
    assert host.report_secret is not None
    assert host.report_secret.describe() == ("file /run/credentials/certops.service/iis01-report")
    assert (host.report_interval, host.report_url) == (10.0, "https://certops.example.test/api/report")
    assert config.bot.log_format == "json"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HOST + 'report_interval = "5s"\n', "hosts[0].report_interval: must be between 10s and 7d"),
        (
            HOST + 'report_secret = "4f1c0a9e7d3b2a18"\n',
            "hosts[0].report_secret: secrets are never written in the config file",
        ),
        (HOST + 'report_secret_env = "4f1c0a9e7d3b2a18c6e5f4d3b2a1908f"\n', "this looks like a token"),
        ('[bot]\npublic_url = "certops.example.test"\n', "bot.public_url: must be the http:// or https:// address"),
        (
            '[bot]\npublic_url = "https://certops.example.test/?x=1"\n',
            "bot.public_url: must be the http:// or https:// address",
        ),
        ('[bot]\npublic_url = "https://user:pw@certops.example.test/"\n', "bot.public_url:"),
        ('[bot]\nlog_format = "xml"\n', "bot.log_format:"),
    ],
)
def test_bad_values_are_refused_with_the_key_and_the_fix(text: str, expected: str) -> None:
    found = problems(text)
    assert any(expected in p for p in found), found
    assert not any("4f1c0a9e7d3b2a18" in p or ":pw@" in p for p in found)
