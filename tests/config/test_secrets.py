"""Secrets come from the environment, a NAME_FILE variable, or a file, and never show in messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import config
from bot.config import SecretRef, SecretUnavailable
from host_actions import target
from host_actions.target import EnvSecret


def test_a_secret_is_read_from_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTOPS_T_PW", "s3cret")
    assert SecretRef("hosts[0].password_env", env="CERTOPS_T_PW").resolve() == "s3cret"


def test_a_secret_falls_back_to_the_file_named_by_name_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    monkeypatch.delenv("CERTOPS_T_PW", raising=False)
    monkeypatch.setenv("CERTOPS_T_PW_FILE", str(tmp_path / "pw"))
    assert SecretRef("k", env="CERTOPS_T_PW").resolve() == "from-file"


def test_a_missing_secret_says_where_it_looked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CERTOPS_T_PW", raising=False)
    monkeypatch.delenv("CERTOPS_T_PW_FILE", raising=False)
    with pytest.raises(
        SecretUnavailable, match=r"hosts\[0\].password_env: environment variable CERTOPS_T_PW is not set"
    ):
        SecretRef("hosts[0].password_env", env="CERTOPS_T_PW").resolve()


def test_an_unreadable_or_empty_secret_file_is_named_but_not_shown(tmp_path: Path) -> None:
    with pytest.raises(SecretUnavailable, match="file not found"):
        SecretRef("k", file=str(tmp_path / "absent")).resolve()
    (tmp_path / "empty").write_text("  \n")
    with pytest.raises(SecretUnavailable, match="is empty"):
        SecretRef("k", file=str(tmp_path / "empty")).resolve()


def test_bot_config_hands_host_actions_its_own_host_and_secret_types() -> None:
    # host_actions never imports bot: the config builds host_actions' Host, with secrets it can catch
    assert config.Host is target.Host
    assert config.SecretUnavailable is target.SecretUnavailable
    secret: target.Secret = SecretRef("hosts[0].password_env", env="CERTOPS_T_PW")
    assert secret.describe() == "environment variable CERTOPS_T_PW (or CERTOPS_T_PW_FILE)"


def test_an_env_secret_names_its_variable_and_never_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CERTOPS_T_SIM_PW", raising=False)
    with pytest.raises(SecretUnavailable, match="environment variable CERTOPS_T_SIM_PW is not set"):
        EnvSecret("CERTOPS_T_SIM_PW").resolve()
    monkeypatch.setenv("CERTOPS_T_SIM_PW", "s3cret")
    assert EnvSecret("CERTOPS_T_SIM_PW").resolve() == "s3cret"
    assert "s3cret" not in repr(EnvSecret("CERTOPS_T_SIM_PW"))
