"""`certops check URL` is what a monitoring system runs once per site, so every module it loads
is paid for at every run: it loads the probe and nothing of the host side, the chat platforms,
the store, or the rest of the config (issue 10). Checked in a fresh interpreter, on a real
loopback TLS site, for a good certificate and for an untrusted one (whose second look parses it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.tls import Lab

REPO = Path(__file__).resolve().parents[2]
NEVER = ("host_actions", "winrm", "requests", "spnego", "slack_bolt", "slack_sdk", "linebot", "sqlalchemy")
NEVER += ("alembic", "psycopg", "httpx", "aiohttp", "apscheduler", "prometheus_client", "tomllib", "commands")
NOT_THE_WHOLE_CONFIG = ("bot.config.load", "bot.config.model", "bot.config.secrets", "bot.store", "bot.core")

RUN = """
import json, runpy, sys
sys.argv = ["certops", *json.loads(sys.argv[1])]
try:
    runpy.run_module("bot.cli", run_name="__main__")
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def loaded_by_check(*args: str) -> tuple[int, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", RUN, json.dumps(["check", *args])],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return int(answer["code"]), list(answer["modules"])


@pytest.mark.parametrize("trusted", [True, False], ids=["verified certificate", "untrusted certificate"])
def test_certops_check_of_a_url_loads_no_host_side_chat_store_or_whole_config(lab: Lab, trusted: bool) -> None:
    site = lab.serve("www.example.test")
    ca = ["--ca-file", lab.ca_file] if trusted else []
    code, modules = loaded_by_check(
        f"https://www.example.test:{site.port}/", "--resolve", f"www.example.test:{site.port}:127.0.0.1", *ca
    )

    assert code == (0 if trusted else 2)
    assert "bot.probe.engine" in modules  # it did probe
    assert [m for m in modules if m.split(".")[0] in NEVER] == []
    assert [m for m in modules if m.startswith(NOT_THE_WHOLE_CONFIG)] == []


def test_certops_check_with_a_config_still_loads_the_config_it_reads(lab: Lab, tmp_path: Path) -> None:
    site = lab.serve("localhost")
    config = tmp_path / "certops.toml"
    config.write_text(f'[[sites]]\nname = "www"\nurl = "https://localhost:{site.port}/"\nca_file = "{lab.ca_file}"\n')
    code, modules = loaded_by_check("-c", str(config))
    assert code == 0
    assert "bot.config.load" in modules
    assert [m for m in modules if m.split(".")[0] in ("winrm", "slack_bolt", "linebot", "sqlalchemy")] == []
