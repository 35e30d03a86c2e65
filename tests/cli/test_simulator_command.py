"""`certops simulator` as a user runs it: a subprocess that prints a [[hosts]] block, which goes
into a config that `certops check-config`, `certops host diagnose` and `certops check` use against
it, until SIGTERM or Ctrl-C ends it cleanly. And `certops host capture` of a configured host."""

from __future__ import annotations

import json
import queue
import re
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.cli import main
from host_actions.capture import load_capture
from host_actions.simulator import WinRMSimulator
from host_actions.simulator.scenarios import incident_host
from tests.host_actions.conftest import PASSWORD_ENV

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
SCENARIO = """
description = "shop is healthy; www's renewed certificate has a broken key link"

[[certs]]
id = "shop"
names = ["shop.example.net"]
days_old = 5

[[certs]]
id = "www"
names = ["www.example.net"]
days_old = 1
key_state = "missing_keyset"

[[sites]]
name = "Shop"
bindings = [
  { information = "*:443:shop.example.net", ssl_flags = 1, cert = "shop" },
  { information = "*:443:www.example.net", ssl_flags = 1, cert = "www" },
]
"""


@dataclass
class Running:
    proc: subprocess.Popen[str]
    banner: str
    stderr: queue.Queue[str]
    readers: list[threading.Thread]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for reader in self.readers:  # they end at EOF, once the process is gone
            reader.join(timeout=10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()

    @property
    def hosts_block(self) -> str:
        match = re.search(r"^\[\[hosts\]\]\n(?:.+\n)+", self.banner, re.M)
        assert match, self.banner
        return match.group(0)

    def tls_port(self) -> int:
        match = re.search(r"^# TLS for the http.sys bindings on port 443: 127\.0\.0\.1:(\d+)$", self.banner, re.M)
        assert match, self.banner
        return int(match.group(1))


def _lines(stream: object, into: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.put(line)


def _start(*args: str) -> Running:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "simulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out: queue.Queue[str] = queue.Queue()
    err: queue.Queue[str] = queue.Queue()
    readers = [
        threading.Thread(target=_lines, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=_lines, args=(proc.stderr, err), daemon=True),
    ]
    for reader in readers:
        reader.start()
    banner: list[str] = []
    while True:  # the banner ends with its blank line after the block, then the TLS lines
        try:
            line = out.get(timeout=30)
        except queue.Empty:
            Running(proc, "", err, readers).close()
            pytest.fail("certops simulator printed no [[hosts]] block within 30 s")
        banner.append(line)
        if "[[hosts]]\n" in banner and line == "\n" and banner.index("[[hosts]]\n") < len(banner) - 1:
            break
    while True:  # the TLS lines arrive in the same write; take what is there
        try:
            banner.append(out.get(timeout=0.5))
        except queue.Empty:
            break
    return Running(proc, "".join(banner), err, readers)


@pytest.fixture
def running() -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for r in started:
        r.close()


def _certops(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, timeout=60, check=False
    )


def _stop(r: Running, sig: int) -> str:
    r.proc.send_signal(sig)
    assert r.proc.wait(timeout=15) == 0
    for reader in r.readers:
        reader.join(timeout=10)
    lines = []
    while not r.stderr.empty():
        lines.append(r.stderr.get())
    return "".join(lines)


def test_the_printed_hosts_block_passes_check_config_and_host_diagnose_reads_the_scenario(
    tmp_path: Path, running: list[Running]
) -> None:
    scenario = tmp_path / "shop.toml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    r = _start("--scenario", str(scenario))
    running.append(r)
    config = tmp_path / "certops.toml"
    config.write_text(r.hosts_block, encoding="utf-8")
    checked = _certops("check-config", "-c", str(config))
    assert checked.returncode == 0, checked.stderr
    diagnosed = _certops("host", "diagnose", "iis-sim", "-c", str(config))
    assert diagnosed.returncode == 1, diagnosed.stderr
    assert diagnosed.stdout.startswith("iis-sim: 1 finding(s), 1 critical.")
    assert "newest_cert_key_unusable" in diagnosed.stdout
    password_file = Path(re.search(r'^password_file = "(.+)"$', r.hosts_block, re.M).group(1))  # type: ignore[union-attr]
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert password_file.read_text(encoding="utf-8") not in r.banner  # the password is only in the file
    stderr = _stop(r, signal.SIGTERM)
    assert "certops simulator: stopped." in stderr
    assert "Traceback" not in stderr
    assert not password_file.parent.exists()


def test_the_printed_check_line_probes_the_tls_site_of_a_binding(tmp_path: Path, running: list[Running]) -> None:
    scenario = tmp_path / "shop.toml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    r = _start("--scenario", str(scenario))
    running.append(r)
    lines = {
        m.group(1): m.group(2) for m in re.finditer(r"^#   certops check (https://([\w.]+):\d+/.*)$", r.banner, re.M)
    }
    lines = {name: command for command, name in lines.items()}
    assert set(lines) == {"shop.example.net", "www.example.net"}
    healthy = _certops("check", *lines["shop.example.net"].split())
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    broken = _certops("check", *lines["www.example.net"].split())  # the broken key resets the handshake
    assert broken.returncode == 2, broken.stdout + broken.stderr
    assert r.tls_port() > 0
    _stop(r, signal.SIGTERM)


def test_a_capture_is_served_over_ntlm_and_diagnosed_as_the_captured_host(
    tmp_path: Path, running: list[Running]
) -> None:
    r = _start("--capture", str(CAPTURES / "incident.json"), "--auth", "ntlm", "--name", "iis01")
    running.append(r)
    assert 'transport = "ntlm"' in r.hosts_block
    assert "allow_insecure_basic" not in r.hosts_block
    config = tmp_path / "certops.toml"
    config.write_text(r.hosts_block, encoding="utf-8")
    diagnosed = _certops("host", "diagnose", "iis01", "-c", str(config), "--json")
    doc = json.loads(diagnosed.stdout)
    codes = {f["code"] for f in doc["details"]["findings"]}
    assert {"newest_cert_key_unusable", "renewal_lacks_script_step", "legacy_task_missing_target"} <= codes
    _stop(r, signal.SIGTERM)


def test_without_a_scenario_it_serves_the_incident_and_ctrl_c_stops_it_cleanly(
    tmp_path: Path, running: list[Running]
) -> None:
    r = _start()
    running.append(r)
    assert "the built-in incident" in r.banner
    config = tmp_path / "certops.toml"
    config.write_text(r.hosts_block, encoding="utf-8")
    assert _certops("host", "inventory", "iis-sim", "-c", str(config)).returncode == 0
    assert "certops simulator: stopped." in _stop(r, signal.SIGINT)


def test_a_scenario_that_cannot_be_used_is_one_sentence_and_exit_3(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.toml"
    scenario.write_text('[[certs]]\nnames = ["a.example"]\nkey_state = "broken"\n', encoding="utf-8")
    result = _certops("simulator", "--scenario", str(scenario))
    assert result.returncode == 3
    assert result.stderr.startswith(f"certops simulator: {scenario}: certs[0].key_state must be one of ")
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""


def test_certops_capture_writes_a_capture_of_a_configured_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with WinRMSimulator(incident_host()) as sim:
        monkeypatch.setenv(PASSWORD_ENV, sim.password)
        config = tmp_path / "certops.toml"
        config.write_text(
            f'[[hosts]]\nname = "iis01"\naddress = "{sim.url}"\ntransport = "basic"\nusername = "certops"\n'
            f'password_env = "{PASSWORD_ENV}"\nallow_insecure_basic = true\n',
            encoding="utf-8",
        )
        out = tmp_path / "iis01.json"
        assert main(["host", "capture", "iis01", "-c", str(config), "-o", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"iis01: wrote {out}. It holds no private key")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert sim.password not in out.read_text(encoding="utf-8")
    assert load_capture(out).host == "iis01"


def test_certops_capture_of_an_unknown_host_is_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "certops.toml"
    config.write_text("", encoding="utf-8")
    assert main(["host", "capture", "nope", "-c", str(config)]) == 3
    assert capsys.readouterr().err == f'No host named "nope" in {config} (known hosts: none).\n'
