"""`certops check-config` in the first hour: settings that do nothing are warned about, counts
read as English, blank and doubled secret variables and Slack tokens of the wrong kind are named,
and the TOML mistakes of a Windows admin come with their fix."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.cli import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "certops.example.toml"
SECRETS = ("CERTOPS_IIS01_PASSWORD", "CERTOPS_SLACK_BOT_TOKEN", "CERTOPS_SLACK_APP_TOKEN",
           "CERTOPS_LINE_CHANNEL_SECRET", "CERTOPS_LINE_ACCESS_TOKEN")  # fmt: skip
HOST = '[[hosts]]\nname = "iis01"\naddress = "https://iis01.example.com:5986/wsman"\nusername = "svc"\n'
SITE = '[[sites]]\nname = "www"\nurl = "https://www.example.com/"\n'
SLACK = '[chat.slack]\nchannel = "C0123456789"\nbot_token_env = "CERTOPS_T_BOT"\napp_token_env = "CERTOPS_T_APP"\n'


Invoke = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Invoke:
    """check-config on `text` through bot.cli.main: (exit code, stdout, stderr)."""

    def invoke(text: str, *extra: str) -> tuple[int, str, str]:
        path = tmp_path / "certops.toml"
        path.write_text(text)
        code = main(["check-config", "-c", str(path), *extra])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


def warnings_in(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("warning:")]


# counts --------------------------------------------------------------------------------------------


def test_one_site_and_one_host_are_counted_as_1_site_and_1_host(cli: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTOPS_T_PW", "pw")
    code, out, _ = cli(SITE + 'host = "iis01"\n' + HOST + 'password_env = "CERTOPS_T_PW"\n')
    assert code == 0
    assert "OK (1 site, 1 host, chat: console only)" in out


def test_one_unreadable_secret_is_counted_as_1_secret(cli: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CERTOPS_T_PW", raising=False)
    monkeypatch.delenv("CERTOPS_T_PW_FILE", raising=False)
    code, _, err = cli(HOST + 'password_env = "CERTOPS_T_PW"\n')
    assert code == 2
    assert "the file is valid, but 1 secret cannot be read:" in err


def test_the_example_config_with_its_secrets_set_has_no_warnings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in SECRETS:
        monkeypatch.setenv(name, f"value-of-{name}")
    assert main(["check-config", "-c", str(EXAMPLE)]) == 0
    assert warnings_in(capsys.readouterr().out) == []


# settings that do nothing ---------------------------------------------------------------------------


def test_an_empty_config_is_a_warning_that_says_what_to_add(cli: Invoke) -> None:
    code, out, _ = cli("")
    assert code == 0
    [warning] = warnings_in(out)
    assert warning.startswith("warning: the config is empty: certops has nothing to probe. Add a [[sites]] table")
    assert 'url = "https://www.example.com/"' in warning
    assert "deploy/certops.example.toml" in warning
    assert "OK (0 sites, 0 hosts, chat: console only)" in out


def test_auto_heal_and_two_person_without_any_host_are_warned_about_by_key(cli: Invoke) -> None:
    policy = (
        '[policy]\napprovers = ["console:alice", "console:bob"]\nauto_heal = ["repair-store"]\n'
        'two_person = ["renew"]\n[policy.action_approvers]\nrebind = ["console:alice"]\nmute = ["console:bob"]\n'
    )
    code, out, _ = cli(SITE + policy)
    assert code == 0
    why = "no [[hosts]] are configured, so no host action is ever proposed or run"
    assert warnings_in(out) == [
        f"warning: policy.auto_heal[0]: repair-store does nothing: {why}",
        f"warning: policy.two_person[0]: renew does nothing: {why}",
        f"warning: policy.action_approvers.rebind: does nothing: {why}",
    ]


def test_a_chat_with_no_approver_who_can_press_there_is_a_warning(cli: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTOPS_T_PW", "pw")
    monkeypatch.setenv("CERTOPS_T_BOT", "xoxb-1")
    monkeypatch.setenv("CERTOPS_T_APP", "xapp-1")
    policy = '[policy]\napprovers = ["line:U0123456789abcdef0123456789abcdef"]\n'
    code, out, _ = cli(SITE + HOST + 'password_env = "CERTOPS_T_PW"\n' + SLACK + policy)
    assert code == 0
    assert warnings_in(out) == [
        "warning: policy.approvers[0]: line:U0123456789abcdef0123456789abcdef can never press a button or run a "
        "command: there is no [chat.line] table",
        'warning: chat.slack: nobody can press its buttons: [policy] approvers lists no slack identity ("slack:U…" '
        'or "slack-group:S…"), so every repair proposed there waits for an approver it cannot have',
    ]


def test_host_and_slack_keys_that_this_setup_never_reads_are_warned_about(
    cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CERTOPS_T_PW", "pw")
    for name in ("CERTOPS_T_BOT", "CERTOPS_T_APP", "CERTOPS_T_SIGN"):
        monkeypatch.setenv(name, "xoxb-1" if name == "CERTOPS_T_BOT" else "stand-in")
    host = HOST + 'password_env = "CERTOPS_T_PW"\nallow_insecure_basic = true\n'
    slack = SLACK + 'signing_secret_env = "CERTOPS_T_SIGN"\n'
    code, out, _ = cli(host + slack + '[policy]\napprovers = ["slack:U0123ABCD"]\n')
    assert code == 0
    assert warnings_in(out) == [
        "warning: hosts[0].allow_insecure_basic: does nothing: it only allows transport basic over an http:// "
        "address, and this host uses ntlm over https://",
        "warning: chat.slack.signing_secret_env: does nothing in socket mode: Slack signs only the requests of "
        "http mode",
    ]


def test_a_site_host_naming_no_host_entry_stays_an_error(cli: Invoke) -> None:
    code, _, err = cli(SITE + 'host = "iis02"\n')
    assert code == 2
    assert 'sites[0].host: names no [[hosts]] entry: "iis02" (known hosts: none are configured)' in err


def test_a_two_person_action_nobody_can_approve_twice_stays_an_error(cli: Invoke) -> None:
    code, _, err = cli(HOST + 'password_env = "P"\n[policy]\napprovers = ["console:alice"]\ntwo_person = ["renew"]\n')
    assert code == 2
    assert "policy.two_person: renew needs two different approvers, but only 1 may approve it" in err


# secrets -------------------------------------------------------------------------------------------


def test_a_variable_set_but_empty_is_reported_as_set_but_empty(cli: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTOPS_T_PW", "")
    monkeypatch.delenv("CERTOPS_T_PW_FILE", raising=False)
    code, _, err = cli(HOST + 'password_env = "CERTOPS_T_PW"\n')
    assert code == 2
    assert (
        "  hosts[0].password_env: environment variable CERTOPS_T_PW is set but empty (set it to the secret, "
        "or unset it and set CERTOPS_T_PW_FILE to a file that holds the secret)"
    ) in err.splitlines()
    assert "not set" not in err


def test_an_empty_name_file_variable_is_reported_as_set_but_empty(cli: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CERTOPS_T_PW", raising=False)
    monkeypatch.setenv("CERTOPS_T_PW_FILE", "")
    code, _, err = cli(HOST + 'password_env = "CERTOPS_T_PW"\n')
    assert code == 2
    assert "environment variable CERTOPS_T_PW_FILE is set but empty" in err


def test_a_variable_and_its_file_variable_both_set_is_an_error_that_says_which_to_unset(
    cli: Invoke,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    monkeypatch.setenv("CERTOPS_T_PW", "from-env")
    monkeypatch.setenv("CERTOPS_T_PW_FILE", str(tmp_path / "pw"))
    code, out, err = cli(HOST + 'password_env = "CERTOPS_T_PW"\n')
    assert code == 2
    assert (
        "  hosts[0].password_env: environment variables CERTOPS_T_PW and CERTOPS_T_PW_FILE are both set; "
        "unset one of them (CERTOPS_T_PW_FILE to use CERTOPS_T_PW, or CERTOPS_T_PW to read the file)"
    ) in err.splitlines()
    assert "from-env" not in out + err
    assert "from-file" not in out + err


def test_an_app_level_token_where_the_bot_token_belongs_is_an_error_naming_xoxb(
    cli: Invoke, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CERTOPS_T_BOT", "xapp-1-A0123-4567-abcdef")
    monkeypatch.setenv("CERTOPS_T_APP", "xoxb-1234-5678-abcdef")
    code, out, err = cli(SITE + SLACK)
    assert code == 2
    assert err.splitlines() == [
        f"{tmp_path / 'certops.toml'}: the file is valid, but 2 secrets cannot be used:",
        "  chat.slack.bot_token_env: environment variable CERTOPS_T_BOT (or CERTOPS_T_BOT_FILE) holds an app-level "
        "token (xapp-…) where one starting with xoxb- belongs: give the Bot User OAuth Token, under OAuth & "
        "Permissions in the Slack app's settings",
        "  chat.slack.app_token_env: environment variable CERTOPS_T_APP (or CERTOPS_T_APP_FILE) holds a bot token "
        "(xoxb-…) where one starting with xapp- belongs: give an app-level token with the connections:write "
        "scope, under Basic Information",
    ]
    assert "abcdef" not in out + err


def test_a_token_where_the_signing_secret_belongs_is_an_error(cli: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTOPS_T_BOT", "xoxb-1")
    monkeypatch.setenv("CERTOPS_T_SIGN", "xoxb-2")
    slack = '[chat.slack]\nmode = "http"\nchannel = "C1"\nbot_token_env = "CERTOPS_T_BOT"\n'
    code, _, err = cli(SITE + slack + 'signing_secret_env = "CERTOPS_T_SIGN"\n')
    assert code == 2
    assert "chat.slack.signing_secret_env: environment variable CERTOPS_T_SIGN (or CERTOPS_T_SIGN_FILE) holds a " in err
    assert "not a signing secret: give the Signing Secret, under Basic Information (32 hexadecimal characters)" in err


def test_a_rotated_bot_token_and_stand_in_values_are_accepted(cli: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTOPS_T_BOT", "xoxe.xoxb-1-rotated")  # Slack's token rotation keeps the kind after xoxe.
    monkeypatch.setenv("CERTOPS_T_APP", "test-app-token")  # no Slack prefix at all: a stand-in, not a wrong kind
    code, out, _ = cli(SITE + SLACK)
    assert code == 0
    assert "OK (1 site, 0 hosts, chat: slack)" in out


# TOML ------------------------------------------------------------------------------------------------


def test_a_windows_user_name_in_double_quotes_explains_single_quotes_or_a_doubled_backslash(cli: Invoke) -> None:
    text = HOST.replace('username = "svc"', 'username = "CONTOSO\\svc-certops"') + 'password_env = "P"\n'
    code, _, err = cli(text)
    assert code == 2
    [_, problem] = err.splitlines()
    assert problem.startswith(
        "  not valid TOML: line 4: in double quotes a backslash starts an escape sequence (such as \\n or \\u00e9): "
        "write username = 'CONTOSO\\svc-certops' (single quotes keep every backslash as it is), "
        'or double each backslash: username = "CONTOSO\\\\svc-certops"'
    )


def test_the_suggested_single_quotes_are_valid_and_read_the_user_name_as_written(
    cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("P", "pw")
    for written in ("'CONTOSO\\svc-certops'", '"CONTOSO\\\\svc-certops"'):
        code, out, _ = cli(HOST.replace('"svc"', written) + 'password_env = "P"\n')
        assert code == 0, written
        assert "OK (0 sites, 1 host" in out
    from bot.config import parse_config

    config = parse_config(HOST.replace('"svc"', "'CONTOSO\\svc-certops'") + 'password_env = "P"\n')
    assert config.hosts[0].username == "CONTOSO\\svc-certops"


def test_a_windows_path_with_a_capital_u_after_the_backslash_gets_the_same_fix(cli: Invoke) -> None:
    code, _, err = cli(HOST + 'password_file = "C:\\Users\\svc\\pw.txt"\n')
    assert code == 2
    assert "line 5: in double quotes a backslash starts an escape sequence" in err
    assert "write password_file = 'C:\\Users\\svc\\pw.txt'" in err


def test_sites_written_with_one_bracket_says_to_write_two(cli: Invoke) -> None:
    code, _, err = cli('[bot]\nlog_level = "info"\n\n[sites]\nname = "www"\nurl = "https://www.example.com/"\n')
    assert code == 2
    assert err.splitlines()[1:] == [
        "  sites: line 4: [sites] declares one table, and each site is a [[sites]] table of its own: "
        "write [[sites]] (two brackets) before each site"
    ]


def test_hosts_written_with_one_bracket_says_to_write_two(cli: Invoke) -> None:
    code, _, err = cli(HOST.replace("[[hosts]]", "[hosts]"))
    assert code == 2
    assert "  hosts: line 1: [hosts] declares one table, and each host is a [[hosts]] table of its own" in err


def test_one_bracket_after_two_is_a_toml_error_that_names_the_single_bracket_line(cli: Invoke) -> None:
    code, _, err = cli(SITE + "[sites]\n" + 'name = "shop"\n')
    assert code == 2
    assert "not valid TOML: Cannot declare ('sites',) twice (at line 4, column 7); line 4: [sites] declares" in err


def test_the_warnings_come_from_the_real_command_line(tmp_path: Path) -> None:
    path = tmp_path / "certops.toml"
    path.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTOPS_T_")}
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "check-config", "-c", str(path)],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("warning: the config is empty")
    assert f"{path}: OK (0 sites, 0 hosts, chat: console only)" in done.stdout
