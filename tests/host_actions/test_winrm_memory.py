"""What one hostile answer within the 16 MiB cap costs in memory: each client runs in a child
process of its own, which reports its peak resident set (VmHWM) above what it held once
everything was imported. Target: under 100 MB above idle, whatever the host answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.hostile_winrm import HostileWinRM, Mode

ROOT = Path(__file__).resolve().parents[2]
PASSWORD_ENV = "CERTOPS_TEST_MEMORY_PASSWORD"
TARGET_MB = 100

CHILD = """
import json, os, sys
from host_actions.errors import HostActionError
from host_actions.inventory import inventory
from host_actions.target import EnvSecret, Host

def kb(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))

url, user, env = sys.argv[1:4]
host = Host(name="hostile", address=url, transport="basic", username=user, password=EnvSecret(env),
            allow_insecure_basic=True, timeout=8.0)
idle = kb("VmRSS")
try:
    inventory(host)
    kind = "ok"
except HostActionError as error:
    kind = error.kind
print(json.dumps({"kind": kind, "peak_mb": (kb("VmHWM") - idle) / 1024}))
"""


def peak_above_idle(mode: Mode) -> tuple[str, float]:
    with HostileWinRM(mode, limit=8.0) as server:
        env = {**os.environ, PASSWORD_ENV: server.sim.password, "PYTHONPATH": str(ROOT)}
        child = subprocess.run(
            [sys.executable, "-c", CHILD, server.url, server.sim.username, PASSWORD_ENV],
            capture_output=True,
            text=True,
            env=env,
            timeout=20,
            check=True,
        )
    result = json.loads(child.stdout.strip().splitlines()[-1])
    return result["kind"], result["peak_mb"]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak resident set from /proc")
@pytest.mark.parametrize(
    "mode",
    [
        "tiny_streams",  # 290,000 Stream elements: 191 MB when pywinrm built the tree
        "many_lines",  # 4 million lines in one stream: 250 MB when stdout was split into lines
        "attribute_bomb",  # a million attributes in one tag: 200 MB inside expat and ElementTree
        "deep_xml",  # 2 million open elements: 240 MB of expat's stack
        "fault_flood",  # an HTTP 500 fault that pywinrm parses into a tree of 1.4 million elements
    ],
)
def test_one_hostile_answer_under_the_size_cap_costs_less_than_100_mb(mode: Mode) -> None:
    kind, peak = peak_above_idle(mode)
    assert kind == "bad_output"
    assert peak < TARGET_MB, f"{mode}: {peak:.1f} MB above idle"
