"""`certops check-config`: exit 0 with a summary, or 2 with every problem and its key's path."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bot.cli import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "certops.example.toml"
SECRETS = ("CERTOPS_IIS01_PASSWORD", "CERTOPS_SLACK_BOT_TOKEN", "CERTOPS_SLACK_APP_TOKEN",
           "CERTOPS_LINE_CHANNEL_SECRET", "CERTOPS_LINE_ACCESS_TOKEN")  # fmt: skip


def test_the_example_config_passes_when_its_secrets_are_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in SECRETS:
        monkeypatch.setenv(name, f"value-of-{name}")
    assert main(["check-config", "-c", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "OK (2 sites, 1 host, chat: slack, line)" in out
    assert "value-of" not in out


def test_missing_secrets_are_listed_without_values_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in SECRETS:
        monkeypatch.setenv(name, "set")
    monkeypatch.delenv("CERTOPS_IIS01_PASSWORD")
    monkeypatch.delenv("CERTOPS_IIS01_PASSWORD_FILE", raising=False)
    assert main(["check-config", "-c", str(EXAMPLE)]) == 2
    err = capsys.readouterr().err
    assert "1 secret cannot be read" in err
    assert "hosts[0].password_env: environment variable CERTOPS_IIS01_PASSWORD is not set" in err
    assert main(["check-config", "-c", str(EXAMPLE), "--no-secrets"]) == 0


def test_an_invalid_config_exits_2_and_lists_each_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[sites]]\nname = "www"\nurl = "https://www.example.com/"\nwarn_days = "ten"\ncolour = "red"\n')
    assert main(["check-config", "-c", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{path}: 2 problems",
        '  sites[0].warn_days: must be a whole number of days, got "ten"',
        "  sites[0].colour: unknown key",
    ]


def test_a_named_pipe_as_the_config_exits_2_at_once_with_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipe = tmp_path / "certops.toml"
    os.mkfifo(pipe)  # nobody ever writes to it: reading it would wait forever
    started = time.monotonic()
    assert main(["check-config", "-c", str(pipe)]) == 2
    assert time.monotonic() - started < 5
    assert capsys.readouterr().err.splitlines() == [
        f"{pipe}: 1 problem",
        f"  cannot be used as the config: {pipe} is a named pipe (FIFO), not a regular file; "
        "give the path of a regular file",
    ]


def test_a_secret_file_under_proc_is_refused_even_when_secrets_are_not_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "certops.toml"
    path.write_text(
        '[[hosts]]\nname = "iis01"\naddress = "https://iis01.example.com:5986/wsman"\nusername = "svc"\n'
        'password_file = "/proc/self/environ"\n'
    )
    assert main(["check-config", "-c", str(path), "--no-secrets"]) == 2
    assert capsys.readouterr().err.splitlines()[1:] == [
        "  hosts[0].password_file: /proc/self/environ is one of the system's own files (under /proc or /sys), "
        "not a regular file; give the path of a regular file"
    ]


def test_a_pasted_token_and_a_url_password_never_reach_the_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token, password = "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp", "Hunter2-S3cret"
    path = tmp_path / "certops.toml"
    path.write_text(
        f'[bot]\nheartbeat_url = "hc-ping.com:{password}@x/1"\n'
        f'[chat.slack]\nchannel = "C1"\nbot_token_env = "{token}"\napp_token_env = "CERTOPS_SLACK_APP_TOKEN"\n'
        f'api_url = "ftp://u:{password}@slack.example"\n'
    )
    assert main(["check-config", "-c", str(path)]) == 2
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert token not in output
    assert password not in output
    assert "chat.slack.bot_token_env: this looks like a token; give the name of a variable that holds it" in output
