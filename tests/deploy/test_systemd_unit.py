"""deploy/certops.service: systemd accepts it, `systemd-analyze security` rates it 2.0 or better,
and what its comments promise (credential names, config keys) is what certops reads."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.web import FD_LIMIT_WANTED
from tests.deploy import DEPLOY, commented_config, config_with_secret_files

UNIT = DEPLOY / "certops.service"
INSTALLED = "/opt/certops/bin/certops"  # where the unit's header installs certops
CREDENTIALS = "/run/credentials/certops.service"  # %d
MAX_EXPOSURE = 2.0
HARDENING = {
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "ProtectProc": "invisible",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "SystemCallArchitectures": "native",
    "MemoryDenyWriteExecute": "yes",
}


def directives(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for each assignment, in order; a key may repeat."""
    found = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not an assignment: {raw!r}"
        found.append((section, key.strip(), value.strip()))
    return found


def service() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for section, key, value in directives(UNIT.read_text(encoding="utf-8")):
        if section == "Service":
            values.setdefault(key, []).append(value)
    return values


def comment_above(key: str) -> str:
    """The comment lines right above `key=` in the unit, joined."""
    lines = UNIT.read_text(encoding="utf-8").splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(f"{key}="))
    above = []
    for line in reversed(lines[:index]):
        if not line.startswith("#"):
            break
        above.insert(0, line.lstrip("# "))
    return " ".join(above)


# the unit's own text ---------------------------------------------------------------------------


def test_the_unit_needs_no_account_and_keeps_the_database_in_its_state_directory() -> None:
    unit = service()
    assert unit["DynamicUser"] == ["yes"]
    assert "User" not in unit
    assert "Group" not in unit
    assert unit["StateDirectory"] == ["certops"]
    assert unit["WorkingDirectory"] == ["/var/lib/certops"]  # [bot] database is relative to it
    assert unit["UMask"] == ["0077"]


def test_secrets_come_from_credentials_not_from_the_environment() -> None:
    unit = service()
    assert "EnvironmentFile" not in unit
    credentials = unit["LoadCredential"]
    assert credentials == ["certops:/etc/certops/credentials"]


def test_the_config_is_checked_first_and_the_stop_and_descriptor_limits_keep_their_reasons() -> None:
    unit = service()
    assert unit["ExecStartPre"] == [f"{INSTALLED} check-config -c /etc/certops/certops.toml"]
    assert unit["ExecStart"] == [f"{INSTALLED} run -c /etc/certops/certops.toml"]
    assert unit["TimeoutStopSec"] == ["90s"]
    assert "lets running host actions and chat deliveries finish" in comment_above("TimeoutStopSec")
    # certops asks for this many descriptors at start (bot/web.py): the unit must allow them
    assert unit["LimitNOFILE"] == [str(FD_LIMIT_WANTED)]
    assert "default soft limit is 1,024" in comment_above("LimitNOFILE")


def test_the_unit_sets_the_whole_hardening_set() -> None:
    unit = service()
    for key, value in HARDENING.items():
        assert unit.get(key) == [value], key
    assert unit["SystemCallFilter"][0] == "@system-service"
    assert "certops demo" in comment_above("MemoryDenyWriteExecute")  # the evidence it is safe


def test_the_credential_names_in_the_comments_are_the_ones_load_credential_makes() -> None:
    text = UNIT.read_text(encoding="utf-8")
    ident, _, folder = service()["LoadCredential"][0].partition(":")
    # a directory loads each file NAME in it as the credential ID_NAME
    mapping = re.search(rf"^#\s+{re.escape(folder)}/(\S+)\s+->\s+{re.escape(CREDENTIALS)}/(\S+)$", text, re.M)
    assert mapping, "the comment showing how a file maps to its credential"
    assert mapping[2] == f"{ident}_{mapping[1]}"
    lines = commented_config(text, CREDENTIALS)
    names = [name for entries in lines.values() for _, name in entries]
    assert len(names) >= 3
    assert all(name.startswith(f"{ident}_") for name in names), names
    assert f"{CREDENTIALS}/{mapping[2]}" in text


def test_a_config_written_as_the_comments_show_passes_check_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What ExecStartPre runs, with the credentials directory at tmp_path (its files are
    regular files, mode 0400, as systemd writes them)."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    config = tmp_path / "certops.toml"
    lines = commented_config(UNIT.read_text(encoding="utf-8"), CREDENTIALS)
    config.write_text(config_with_secret_files(lines, credentials), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["check-config", "-c", str(config)]) == 0, capsys.readouterr().err
    assert "OK (1 site, 1 host, chat: slack)" in capsys.readouterr().out


# systemd-analyze ------------------------------------------------------------------------------


def systemd_analyze(minimum: int = 0) -> str:
    """The path of systemd-analyze, or a skip saying why it cannot be used."""
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd; scripts/test tries)")
    version = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=30, check=False)
    match = re.match(r"systemd (\d+)", version.stdout)
    if version.returncode != 0 or match is None:
        pytest.skip(f"systemd-analyze --version did not answer: {(version.stdout + version.stderr).strip()!r}")
    if int(match[1]) < minimum:
        pytest.skip(f"systemd {match[1]} is too old: --offline needs systemd {minimum} or later")
    return found


def runnable_copy(folder: Path) -> Path:
    """The unit with its commands pointed at a certops that exists here: verify checks them."""
    certops = Path(sys.executable).parent / "certops"
    if not os.access(certops, os.X_OK):
        certops = folder / "certops"
        certops.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
        certops.chmod(0o755)
    text = UNIT.read_text(encoding="utf-8")
    assert text.count(f"={INSTALLED} ") == 2  # ExecStartPre and ExecStart
    copy = folder / "certops.service"
    copy.write_text(text.replace(f"={INSTALLED} ", f"={certops} "), encoding="utf-8")
    return copy


def test_systemd_analyze_verify_finds_nothing_wrong_with_the_unit(tmp_path: Path) -> None:
    analyze = systemd_analyze()
    copy = runnable_copy(tmp_path)
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": ""},
    )
    output = result.stdout + result.stderr
    ours = [line for line in output.splitlines() if "certops" in line or str(tmp_path) in line]
    # an unknown key or a bad value is only a warning, with exit code 0: the lines say it
    assert ours == [], output
    assert result.returncode == 0, output


def test_systemd_analyze_security_rates_the_unit_2_0_or_better() -> None:
    analyze = systemd_analyze(minimum=252)
    result = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_COLORS": "0"},
    )
    output = result.stdout + result.stderr
    if result.returncode != 0 and "offline" in output and "unrecognized" in output:
        pytest.skip(f"this systemd-analyze has no --offline: {output.strip()[:200]}")
    score = re.search(r"Overall exposure level for certops\.service: (\d+(?:\.\d+)?)", output)
    assert score, output
    assert float(score[1]) <= MAX_EXPOSURE, output
