"""`certops run`: refuses a bad config or a missing secret; otherwise serves chat and /healthz."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bot.cli import main


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_run_refuses_to_start_on_an_invalid_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "certops.toml"
    path.write_text('[bot]\nlisten = "everywhere"\n')
    assert main(["run", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert 'bot.listen: must be ADDRESS:PORT such as "127.0.0.1:8080", got "everywhere"' in err
    assert "not starting until the config is fixed" in err


def test_run_refuses_to_start_when_a_secret_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CERTOPS_T_LINE_SECRET", raising=False)
    monkeypatch.delenv("CERTOPS_T_LINE_SECRET_FILE", raising=False)
    monkeypatch.setenv("CERTOPS_T_LINE_TOKEN", "token-value")
    path = tmp_path / "certops.toml"
    path.write_text(
        '[chat.line]\nto = "Cabc"\nchannel_secret_env = "CERTOPS_T_LINE_SECRET"\n'
        'access_token_env = "CERTOPS_T_LINE_TOKEN"\n'
    )
    assert main(["run", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert "chat.line.channel_secret_env: environment variable CERTOPS_T_LINE_SECRET is not set" in err
    assert "token-value" not in err


def test_run_serves_healthz_and_takes_console_commands(tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "certops.toml"
    path.write_text(f'[bot]\nlisten = "127.0.0.1:{port}"\ndatabase = "{tmp_path / "state.db"}"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run", "-c", str(path), "--console"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        health = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                    health = json.loads(answer.read())
                break
            except OSError:
                time.sleep(0.1)
        assert health is not None
        assert (health["status"], health["problems"], health["outbox_pending"]) == ("ok", [], 0)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            metrics = answer.read().decode()
            assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "certops_incidents_open 0.0" in metrics
        assert "certops_outbox_pending 0.0" in metrics
        assert "# TYPE certops_scheduler_lag_seconds histogram" in metrics
        out, err = proc.communicate("/ssl help\nstatus\nquit\n", timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "/ssl heal <site>" in out
    assert "No sites are configured." in out
    assert (tmp_path / "state.db").exists()


def test_run_says_so_when_its_port_is_taken(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        path = tmp_path / "certops.toml"
        path.write_text(f'[bot]\nlisten = "127.0.0.1:{port}"\ndatabase = "{tmp_path / "state.db"}"\n')
        assert main(["run", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert "certops run: cannot start: Address already in use" in err
    assert "Traceback" not in err


def test_run_stops_cleanly_on_sigterm_while_it_probes(tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "certops.toml"
    site_port = free_port()  # nothing listens there: every probe fails fast with connect_refused
    path.write_text(
        f'[bot]\nlisten = "127.0.0.1:{port}"\ndatabase = "{tmp_path / "state.db"}"\n'
        f'[[sites]]\nname = "www"\nurl = "https://127.0.0.1:{site_port}/"\ninterval = "5s"\ntimeout = 2\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run", "-c", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
                    if "certops_probe_success{address=" in answer.read().decode():
                        break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError("the site was never probed")
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
