"""NAME and NAME_FILE as containers use them: one or the other; a variable left blank is said to be blank."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import SecretRef, SecretUnavailable


def test_a_variable_set_but_empty_is_set_but_empty_not_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTOPS_T_PW", "")
    monkeypatch.delenv("CERTOPS_T_PW_FILE", raising=False)
    with pytest.raises(SecretUnavailable) as caught:
        SecretRef("hosts[0].password_env", env="CERTOPS_T_PW").resolve()
    assert str(caught.value) == (
        "hosts[0].password_env: environment variable CERTOPS_T_PW is set but empty "
        "(set it to the secret, or unset it and set CERTOPS_T_PW_FILE to a file that holds the secret)"
    )


def test_an_empty_variable_beside_a_file_variable_reads_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    monkeypatch.setenv("CERTOPS_T_PW", "")  # what `docker run -e CERTOPS_T_PW` leaves when the host has none
    monkeypatch.setenv("CERTOPS_T_PW_FILE", str(tmp_path / "pw"))
    assert SecretRef("k", env="CERTOPS_T_PW").resolve() == "from-file"


def test_both_a_variable_and_its_file_variable_set_is_refused_naming_which_to_unset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    monkeypatch.setenv("CERTOPS_T_PW", "from-env")
    monkeypatch.setenv("CERTOPS_T_PW_FILE", str(tmp_path / "pw"))
    with pytest.raises(SecretUnavailable) as caught:
        SecretRef("chat.line.access_token_env", env="CERTOPS_T_PW").resolve()
    message = str(caught.value)
    assert message == (
        "chat.line.access_token_env: environment variables CERTOPS_T_PW and CERTOPS_T_PW_FILE are both set; "
        "unset one of them (CERTOPS_T_PW_FILE to use CERTOPS_T_PW, or CERTOPS_T_PW to read the file)"
    )
    assert "from-" not in message


def test_an_empty_file_variable_is_set_but_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CERTOPS_T_PW", raising=False)
    monkeypatch.setenv("CERTOPS_T_PW_FILE", "")
    with pytest.raises(SecretUnavailable, match="environment variable CERTOPS_T_PW_FILE is set but empty"):
        SecretRef("k", env="CERTOPS_T_PW").resolve()
