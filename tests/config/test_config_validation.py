"""The config is validated once, and every mistake is reported with its key's path and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, parse_config
from bot.config.load import load_config

REPO = Path(__file__).resolve().parents[2]
MINIMAL = '[[sites]]\nname = "www"\nurl = "https://www.example.com/"\n'


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return [str(issue) for issue in caught.value.issues]


def test_a_minimal_site_gets_the_documented_defaults() -> None:
    site = parse_config(MINIMAL).sites[0]
    assert (site.hostname, site.port, site.path) == ("www.example.com", 443, "/")
    assert (site.interval, site.warn_days, site.crit_days, site.timeout) == (300.0, 21, 7, 10.0)
    assert site.origins == ()
    assert site.expect_status == ()
    assert site.keyword is None


def test_a_complete_site_is_read_with_every_key() -> None:
    config = parse_config(
        MINIMAL.replace('"https://www.example.com/"', '"https://www.example.com:8443/shop?x=1"')
        + 'origins = ["203.0.113.10", "[2001:db8::1]:443", "origin.example.net:8443"]\n'
        'interval = "1h30m"\nwarn_days = 30\ncrit_days = 10\nexpect_status = [200, 301]\n'
        'keyword = "Welcome"\ntimeout = 5\nhost = "iis01"\n'
        '[[hosts]]\nname = "iis01"\naddress = "https://iis01.example.com:5986/wsman"\n'
        'username = "svc"\npassword_env = "IIS01_PASSWORD"\n'
    )
    site = config.sites[0]
    assert (site.port, site.path) == (8443, "/shop?x=1")
    assert site.origins == ("203.0.113.10", "[2001:db8::1]:443", "origin.example.net:8443")
    assert (site.interval, site.warn_days, site.crit_days, site.timeout) == (5400.0, 30, 10, 5.0)
    assert site.expect_status == (200, 301)
    assert site.keyword == "Welcome"
    assert site.host == "iis01"


def test_a_word_where_a_number_of_days_belongs_names_the_key_and_the_value() -> None:
    text = MINIMAL * 3 + 'warn_days = "ten"\n'
    text = text.replace('name = "www"', 'name = "a"', 1).replace('name = "www"', 'name = "b"', 1)
    assert problems(text) == ['sites[2].warn_days: must be a whole number of days, got "ten"']


def test_an_unknown_key_is_an_error_with_a_did_you_mean_hint() -> None:
    assert problems(MINIMAL + "warn_dyas = 10\n") == ['sites[0].warn_dyas: unknown key (did you mean "warn_days"?)']
    assert problems("[bots]\n") == ['bots: unknown key (did you mean "bot"?)']


def test_every_problem_in_the_file_is_reported_at_once() -> None:
    found = problems(
        '[bot]\nlisten = "nowhere"\nlog_level = "loud"\n'
        '[[sites]]\nname = "www"\nurl = "http://www.example.com/"\ninterval = "5 minutes"\n'
        'crit_days = 30\nexpect_status = [200, 999]\norigins = ["not an address"]\nhost = "iis9"\n'
        '[[sites]]\nname = "www"\n'
    )
    assert found == [
        'bot.listen: must be ADDRESS:PORT such as "127.0.0.1:8080", got "nowhere"',
        'bot.log_level: must be one of "debug", "info", "warning", "error", got "loud"',
        'sites[0].url: must be an https:// address such as "https://www.example.com/", got "http://www.example.com/"',
        'sites[0].origins[0]: must be an address such as "203.0.113.10", "203.0.113.10:8443" or '
        '"[2001:db8::1]:443", got "not an address"',
        "sites[0].crit_days: must not be more than warn_days (21), got 30",
        "sites[0].expect_status[1]: must be an HTTP status code from 100 to 599, got 999",
        'sites[0].host: names no [[hosts]] entry: "iis9" (known hosts: none are configured)',
        'sites[0].interval: must be a duration such as "30s", "5m" or "1h", got "5 minutes"',
        'sites[1].name: "www" is used by another site; names must be unique',
        'sites[1].url: is required (e.g. "https://www.example.com/")',
    ]


def test_a_secret_written_in_the_file_is_refused_with_the_way_to_do_it() -> None:
    text = '[[hosts]]\nname = "iis01"\naddress = "https://h:5986/wsman"\nusername = "u"\npassword = "hunter2"\n'
    found = problems(text)
    assert found[0].startswith("hosts[0].password: secrets are never written in the config file; use password_env")
    assert all("hunter2" not in line for line in found)


def test_basic_over_plain_http_is_refused_unless_allowed() -> None:
    host = (
        '[[hosts]]\nname = "lab"\naddress = "http://10.0.0.5:5985/wsman"\ntransport = "basic"\n'
        'username = "u"\npassword_env = "P"\n'
    )
    assert problems(host)[0].startswith("hosts[0].transport: Basic over http:// sends the password in clear")
    assert parse_config(host + "allow_insecure_basic = true\n").hosts[0].allow_insecure_basic


def test_slack_socket_mode_needs_an_app_token_and_http_mode_a_signing_secret() -> None:
    base = '[chat.slack]\nchannel = "C1"\nbot_token_env = "B"\n'
    assert problems(base) == ["chat.slack.app_token_env: is required in socket mode (or app_token_file)"]
    assert problems(base + 'mode = "http"\n') == [
        "chat.slack.signing_secret_env: is required in http mode (or signing_secret_file)"
    ]
    assert parse_config(base + 'app_token_file = "/run/secrets/app"\n').slack is not None


def test_policy_names_must_be_real_principals_and_actions() -> None:
    found = problems('[policy]\napprovers = ["bob"]\nauto_heal = ["reboot"]\nbutton_ttl = "10s"\n')
    assert found == [
        'policy.approvers[0]: must be "slack:U…", "slack-group:S…", "line:U…" (32 hex digits) or "console:NAME", '
        'got "bob"',
        'policy.auto_heal[0]: unknown action "reboot"; actions are diagnose, repair-store, verify-binding, '
        "rebind, renew, audit-tasks, retire-task, add-post-renew-step, install-self-heal",
        'policy.button_ttl: must be between 1m and 1d, got "10s"',
    ]


def test_a_file_that_is_not_toml_says_where() -> None:
    found = problems('[[sites]]\nname = "www\n')
    assert len(found) == 1
    assert found[0].startswith("not valid TOML:")
    assert "line 2" in found[0]


def test_a_missing_file_says_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.toml")
    assert "copy deploy/certops.example.toml" in caught.value.render()


def test_the_example_config_is_complete_and_valid() -> None:
    config = load_config(REPO / "deploy" / "certops.example.toml")
    assert [s.name for s in config.sites] == ["www", "shop"]
    assert config.sites[0].origins == ("203.0.113.10",)
    assert config.hosts[0].password is not None
    assert config.hosts[0].password.env == "CERTOPS_IIS01_PASSWORD"
    assert config.slack is not None
    assert config.line is not None
    assert config.policy.two_person == ("renew",)


HOST = (
    '[[hosts]]\nname = "iis01"\naddress = "https://iis01.example.com:5986/wsman"\nusername = "u"\npassword_env = "P"\n'
)


def test_a_wacs_path_that_is_not_a_windows_path_to_wacs_exe_is_refused_at_load() -> None:
    rule = (
        "must be the full Windows path of wacs.exe, without quotes, &, $, ; or ` "
        '(such as "C:\\Program Files\\win-acme\\wacs.exe")'
    )
    assert problems(HOST + 'wacs_path = "/opt/wacs"\n') == [f'hosts[0].wacs_path: {rule}, got "/opt/wacs"']
    assert problems(HOST + "wacs_path = 'C:\\Tools&Co\\wacs.exe'\n") == [
        f'hosts[0].wacs_path: {rule}, got "C:\\Tools&Co\\wacs.exe"'
    ]
    assert parse_config(HOST + "wacs_path = 'D:\\tools\\win-acme\\wacs.exe'\n").hosts[0].wacs_path.startswith("D:")


def test_user_names_and_passwords_inside_urls_are_refused() -> None:
    found = problems(
        '[[sites]]\nname = "a"\nurl = "https://admin:pw@www.example.com/"\n'
        + HOST.replace("https://iis01", "https://svc:pw@iis01")
    )
    assert found == [
        "hosts[0].address: must not contain a user name or password: secrets never go in the config file",
        "sites[0].url: must not contain a user name or password: secrets never go in the config file",
    ]
    assert all("pw" not in line.split(":", 1)[1] for line in found)


def test_port_zero_and_duplicate_origins_are_refused() -> None:
    assert problems('[[sites]]\nname = "a"\nurl = "https://www.example.com:0/"\n') == [
        'sites[0].url: has an invalid port: "https://www.example.com:0/"'
    ]
    assert problems(MINIMAL + 'origins = ["203.0.113.10", "203.0.113.10"]\n') == [
        "sites[0].origins: lists the same address twice"
    ]


def test_an_international_host_name_is_probed_in_its_dns_spelling() -> None:
    site = parse_config('[[sites]]\nname = "jp"\nurl = "https://例え.jp/パス?q=検索"\n').sites[0]
    assert site.hostname == "xn--r8jz45g.jp"
    assert parse_config('[[sites]]\nname = "de"\nurl = "https://straße.de/"\n').sites[0].hostname == "xn--strae-oqa.de"
    assert site.path == "/%E3%83%91%E3%82%B9?q=%E6%A4%9C%E7%B4%A2"


def test_policies_that_could_never_work_are_refused() -> None:
    found = problems('[policy]\napprovers = ["slack:UADA"]\ntwo_person = ["renew"]\nauto_heal = ["renew"]\n')
    assert found == [
        "policy.auto_heal: renew is also in two_person: choose one (auto_heal would skip both approvals)",
        "policy.two_person: renew needs two different approvers, but only 1 may approve it",
    ]


def test_relative_file_names_are_found_next_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not checked here")
    (tmp_path / "certops.toml").write_text(MINIMAL + 'ca_file = "ca.pem"\n')
    assert load_config(tmp_path / "certops.toml").sites[0].ca_file == str(tmp_path / "ca.pem")
