"""Only regular files are read, with a size cap and a deadline: the config file, the secret files
it names (and NAME_FILE variables), and the certificate files it names. Each refusal is one
sentence that names the file and what to do, and none of them waits for a writer or a device."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from bot.config import ConfigError, SecretRef, SecretUnavailable, parse_config
from bot.config.files import CONFIG_CAP, SECRET_CAP, FileRefused, read_text, within
from bot.config.load import load_config

SITE = '[[sites]]\nname = "www"\nurl = "https://www.example.com/"\n'
HOST = '[[hosts]]\nname = "iis01"\naddress = "https://iis01.example.com:5986/wsman"\nusername = "svc"\n'


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def problems_of_file(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(issue) for issue in caught.value.issues]


def config_problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return [str(issue) for issue in caught.value.issues]


def test_a_named_pipe_as_the_config_is_refused_at_once_instead_of_waiting_for_a_writer(fifo: Path) -> None:
    started = time.monotonic()
    assert problems_of_file(fifo) == [
        f"cannot be used as the config: {fifo} is a named pipe (FIFO), not a regular file; "
        "give the path of a regular file"
    ]
    assert time.monotonic() - started < 2


def test_a_device_as_the_config_is_refused_without_reading_it() -> None:
    assert problems_of_file(Path("/dev/zero")) == [
        "cannot be used as the config: /dev/zero is a character device, not a regular file; "
        "give the path of a regular file"
    ]


def test_a_config_of_300_mib_is_refused_by_its_size_before_a_byte_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    with big.open("wb") as out:
        out.truncate(300 * 1024 * 1024)  # sparse: nothing is written, the size is real
    assert problems_of_file(big) == [
        f"cannot be used as the config: {big} is 300 MiB, and a config file may be at most 4 MiB; "
        "give the path of the right file"
    ]


def test_a_config_just_over_the_cap_is_refused_and_one_at_the_cap_is_read(tmp_path: Path) -> None:
    at_cap = tmp_path / "at.toml"
    at_cap.write_bytes(SITE.encode() + b"#" * (CONFIG_CAP - len(SITE)))
    assert load_config(at_cap).sites[0].name == "www"
    over = tmp_path / "over.toml"
    over.write_bytes(at_cap.read_bytes() + b"#")
    assert problems_of_file(over) == [
        f"cannot be used as the config: {over} is 4 MiB, and a config file may be at most 4 MiB; "
        "give the path of the right file"
    ]


def test_a_proc_file_as_the_config_is_refused_as_one_of_the_systems_own() -> None:
    assert problems_of_file(Path("/proc/self/environ")) == [
        "cannot be used as the config: /proc/self/environ is one of the system's own files "
        "(under /proc or /sys), not a regular file; give the path of a regular file"
    ]


def test_a_folder_as_the_config_is_refused_as_a_folder(tmp_path: Path) -> None:
    assert problems_of_file(tmp_path) == [
        f"cannot be used as the config: {tmp_path} is a folder, not a regular file; give the path of a regular file"
    ]


def test_a_config_that_is_not_utf8_names_the_first_byte_that_is_not(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(SITE.encode() + 'keyword = "café"\n'.encode("latin-1"))
    assert problems_of_file(path) == [
        f"cannot be used as the config: {path} is not UTF-8 text (byte {len(SITE) + 15} cannot be read as UTF-8); "
        "save it as UTF-8"
    ]


def test_a_config_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "notepad.toml"
    path.write_bytes(b"\xef\xbb\xbf" + SITE.encode())  # what older Windows editors write
    assert load_config(path).sites[0].url == "https://www.example.com/"


def test_a_config_reached_through_a_symbolic_link_is_read(tmp_path: Path) -> None:
    real = tmp_path / "real.toml"
    real.write_text(SITE)
    link = tmp_path / "link.toml"
    link.symlink_to(real)  # as Kubernetes mounts a ConfigMap
    assert load_config(link).sites[0].name == "www"


def test_a_symbolic_link_to_a_named_pipe_is_judged_by_the_pipe(tmp_path: Path, fifo: Path) -> None:
    link = tmp_path / "link.toml"
    link.symlink_to(fifo)
    assert problems_of_file(link) == [
        f"cannot be used as the config: {link} is a named pipe (FIFO), not a regular file; "
        "give the path of a regular file"
    ]


def test_password_file_naming_proc_self_environ_is_refused_when_the_config_is_read() -> None:
    assert config_problems(HOST + 'password_file = "/proc/self/environ"\n') == [
        "hosts[0].password_file: /proc/self/environ is one of the system's own files (under /proc or /sys), "
        "not a regular file; give the path of a regular file"
    ]


def test_a_secret_file_key_naming_a_pipe_or_a_device_is_refused_when_the_config_is_read(fifo: Path) -> None:
    assert config_problems(HOST + f'password_file = "{fifo}"\n') == [
        f"hosts[0].password_file: {fifo} is a named pipe (FIFO), not a regular file; give the path of a regular file"
    ]
    slack = '[chat.slack]\nchannel = "C1"\nbot_token_file = "/dev/zero"\napp_token_env = "CERTOPS_T_APP"\n'
    assert config_problems(slack) == [
        "chat.slack.bot_token_file: /dev/zero is a character device, not a regular file; "
        "give the path of a regular file"
    ]


def test_a_secret_file_that_does_not_exist_yet_is_left_to_the_secrets_check(tmp_path: Path) -> None:
    config = parse_config(HOST + f'password_file = "{tmp_path / "later"}"\n')
    assert config.hosts[0].password is not None
    with pytest.raises(SecretUnavailable, match=r"^hosts\[0\]\.password_file: file not found: "):
        config.hosts[0].password.resolve()


def test_a_ca_file_that_is_a_pipe_a_device_or_a_proc_file_is_refused(fifo: Path) -> None:
    for name, kind in (
        (str(fifo), "a named pipe (FIFO)"),
        ("/dev/zero", "a character device"),
        ("/proc/self/environ", "one of the system's own files (under /proc or /sys)"),
    ):
        assert config_problems(SITE + f'ca_file = "{name}"\n') == [
            f"sites[0].ca_file: {name} is {kind}, not a regular file; give the path of a regular file"
        ]


def test_a_secret_file_is_read_through_its_cap_and_refused_past_it(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"t" * SECRET_CAP)
    assert SecretRef("k", file=str(path)).resolve() == "t" * SECRET_CAP
    path.write_bytes(b"t" * (SECRET_CAP + 1))
    with pytest.raises(SecretUnavailable) as refused:
        SecretRef("k", file=str(path)).resolve()
    assert str(refused.value) == (
        f"k: {path} is 64 KiB, and a secret file may be at most 64 KiB; give the path of the right file"
    )


def test_a_secret_file_that_is_not_utf8_is_refused_without_showing_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_bytes("zqé-zqx".encode("latin-1"))
    with pytest.raises(SecretUnavailable) as refused:
        SecretRef("hosts[0].password_file", file=str(path)).resolve()
    message = str(refused.value)
    assert message == (
        f"hosts[0].password_file: {path} is not UTF-8 text (byte 3 cannot be read as UTF-8); save it as UTF-8"
    )
    assert "zq" not in message.replace(str(path), "")


def test_a_name_file_variable_naming_a_pipe_says_which_variable_named_it(
    fifo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CERTOPS_T_PW", raising=False)
    monkeypatch.setenv("CERTOPS_T_PW_FILE", str(fifo))
    started = time.monotonic()
    with pytest.raises(SecretUnavailable) as refused:
        SecretRef("hosts[0].password_env", env="CERTOPS_T_PW").resolve()
    assert time.monotonic() - started < 2
    assert str(refused.value) == (
        f"hosts[0].password_env: CERTOPS_T_PW_FILE names a file that cannot be used: {fifo} is a named pipe "
        "(FIFO), not a regular file; give the path of a regular file"
    )


def test_a_name_file_variable_naming_proc_self_environ_never_hands_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CERTOPS_T_PW", raising=False)
    monkeypatch.setenv("CERTOPS_T_PW_FILE", "/proc/self/environ")
    monkeypatch.setenv("CERTOPS_T_OTHER", "other-secret")
    with pytest.raises(SecretUnavailable) as refused:
        SecretRef("k", env="CERTOPS_T_PW").resolve()
    assert "one of the system's own files" in str(refused.value)
    assert "other-secret" not in str(refused.value)


def test_a_secret_variable_that_is_not_utf8_is_refused_with_its_name_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # the environment holds bytes; Python keeps those that are not UTF-8 as lone surrogates
    monkeypatch.setenv("CERTOPS_T_PW", os.fsdecode(b"caf\xe9"))
    with pytest.raises(SecretUnavailable) as refused:
        SecretRef("hosts[0].password_env", env="CERTOPS_T_PW").resolve()
    assert str(refused.value) == (
        "hosts[0].password_env: environment variable CERTOPS_T_PW is not UTF-8 text; "
        "set it to the secret written as UTF-8"
    )


def test_a_read_that_does_not_finish_in_time_is_abandoned_with_a_sentence(fifo: Path) -> None:
    # a blocking open of a pipe with no writer stands in for a network share that stopped answering
    started = time.monotonic()
    with pytest.raises(FileRefused) as late:
        within(0.3, lambda: os.open(fifo, os.O_RDONLY), f"{fifo} did not answer within 0.3s")
    assert time.monotonic() - started < 2
    assert str(late.value) == (
        f"{fifo} did not answer within 0.3s (a network share that stopped answering?); copy the file to a local disk"
    )
    # let the abandoned thread's open finish, so it ends with the test
    writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    os.close(writer)
    deadline = time.monotonic() + 2
    while any(t.name == "certops-read-file" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.01)


def test_reading_a_regular_file_gives_its_text(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("héllo\n", encoding="utf-8")
    assert read_text(path, cap=100, what="a test file") == "héllo\n"
