"""`certops run` with [bot] probe_workers = 2: a loopback site is probed through two worker
processes, a killed worker is restarted and counted in /metrics, and SIGTERM leaves no worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.cli.test_run_command import free_port
from tests.fakes.processes import probe_workers_of
from tests.fakes.tls import Lab

GOOD = 'certops_probe_success{address="127.0.0.1",site="www",vantage="local",via="public"} 1.0'


def metrics(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            return str(answer.read().decode())
    except OSError:
        return ""


def wait_for(what: str, check: object, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_bot_probes_through_two_worker_processes_and_restarts_a_killed_one(lab: Lab, tmp_path: Path) -> None:
    endpoint = lab.serve("127.0.0.1")
    port = free_port()
    path = tmp_path / "certops.toml"
    path.write_text(
        f'[bot]\nlisten = "127.0.0.1:{port}"\ndatabase = "{tmp_path / "state.db"}"\nprobe_workers = 2\n'
        f'[[sites]]\nname = "www"\nurl = "https://127.0.0.1:{endpoint.port}/"\nca_file = "{lab.ca_file}"\n'
        'interval = "5s"\ntimeout = 3\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run", "-c", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        wait_for("the site's first good probe", lambda: GOOD in metrics(port))
        workers = probe_workers_of(proc.pid)
        assert len(workers) == 2, workers
        assert "certops_probe_worker_restarts_total 0.0" in metrics(port)
        assert endpoint.requests, "the probe reached the loopback server"

        os.kill(workers[0], signal.SIGKILL)
        wait_for("the restart in /metrics", lambda: "certops_probe_worker_restarts_total 1.0" in metrics(port))
        wait_for("a replacement worker", lambda: len(probe_workers_of(proc.pid)) == 2)
        replacement = set(probe_workers_of(proc.pid)) - set(workers)
        assert len(replacement) == 1
        seen = len(endpoint.requests)
        wait_for("the next round", lambda: len(endpoint.requests) > seen, seconds=15)  # still watched
        assert GOOD in metrics(port)

        final = probe_workers_of(proc.pid)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert err.count("was killed by SIGKILL") == 1, err  # the death, logged once
    for pid in final:  # ended by the bot itself and reaped: not even a zombie is left
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists(), f"probe worker {pid} outlived certops run"
