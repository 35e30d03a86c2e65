"""`certops run` writes its log as [bot] log_format says: logfmt by default, one JSON object a
line with log_format = "json", and under journald without timestamps but with priorities."""

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

from tests.logs.logfmt import parse

NOTE = "certops run: "  # what certops run prints itself (not log records): the database it opened


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_certops(tmp_path: Path, bot: str = "", journald: bool = False) -> list[str]:
    """Starts certops run on a small config, waits for /healthz, stops it with SIGTERM and returns
    its log lines (stderr, less its own notes). journald: JOURNAL_STREAM names its stderr, as
    systemd sets it for a service whose stderr is the journal."""
    port = free_port()
    path = tmp_path / "certops.toml"
    path.write_text(f'[bot]\nlisten = "127.0.0.1:{port}"\ndatabase = "{tmp_path / "state.db"}"\n{bot}')
    env = {key: value for key, value in os.environ.items() if key != "JOURNAL_STREAM"}
    with (tmp_path / "stderr").open("w") as stderr:
        if journald:
            stat = os.fstat(stderr.fileno())
            env["JOURNAL_STREAM"] = f"{stat.st_dev}:{stat.st_ino}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run", "-c", str(path)],
            stdout=subprocess.DEVNULL, stderr=stderr, env=env,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                        break
                except OSError:
                    time.sleep(0.1)
            assert proc.poll() is None, (tmp_path / "stderr").read_text()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, (tmp_path / "stderr").read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    lines = (tmp_path / "stderr").read_text().splitlines()
    return [line for line in lines if not line.startswith(NOTE)]


def test_certops_run_writes_one_json_object_a_line_with_log_format_json(tmp_path: Path) -> None:
    lines = run_certops(tmp_path, 'log_format = "json"\nlog_level = "info"\n')
    assert lines
    records = [json.loads(line) for line in lines]  # every line: a whole JSON document
    for record in records:
        assert {"ts", "level", "logger", "msg"} <= set(record), record
        assert record["ts"].endswith("Z")
    ours = [record for record in records if record["logger"].startswith("certops.")]
    assert any("listening on 127.0.0.1:" in record["msg"] for record in ours), records


def test_certops_run_writes_logfmt_by_default(tmp_path: Path) -> None:
    lines = run_certops(tmp_path, 'log_level = "info"\n')
    assert lines
    records = [parse(line) for line in lines]  # AssertionError for a line that is not logfmt
    assert all(record["ts"] and record["level"] in {"debug", "info", "warning", "error"} for record in records)
    assert any(record["logger"] == "certops.runner" for record in records), lines


def test_certops_run_under_journald_leaves_the_timestamp_to_the_journal_and_gives_priorities(tmp_path: Path) -> None:
    lines = run_certops(tmp_path, 'log_format = "json"\nlog_level = "info"\n', journald=True)
    assert lines
    for line in lines:
        assert line.startswith("<6>{") or line.startswith(("<4>{", "<3>{")), line  # info; warning, error
        record = json.loads(line[3:])
        assert "ts" not in record
        assert record["level"] in {"info", "warning", "error"}
