"""`certops check-config`: exit 0 with a summary, or 2 with every problem and its key's path."""

from __future__ import annotations

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
    assert "OK (2 sites, 1 hosts, chat: slack, line)" in out
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
    assert "1 secret(s) cannot be read" in err
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
