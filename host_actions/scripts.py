"""The PowerShell scripts we run, and how a job travels to the host.

Decision (see docs/host-actions.md): pywinrm's `run_ps` puts the whole script on a cmd.exe
command line (about 8K characters, ~3K of script after UTF-16 and base64). Instead, the command
line carries only a fixed bootstrap (`ps/bootstrap.ps1`, about 2.9K characters encoded), and the job - the
script texts and their parameters as JSON - goes over stdin with WS-Man Send, base64-wrapped
so that no code page can garble it. This is how Ansible's WinRM connection ships its wrapper.
One command can run several scripts ("parts"), which keeps an inventory to one command.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

SCRIPT_NAMES = (
    "certs",
    "bindings",
    "winacme",
    "tasks",
    "repair_store",
    "rebind",
    "renew",
    "retire_task",
    "add_post_renew_step",
    "layer_state",
    "report_config",
    "install_self_heal",
)
MARKER = "# certops-script: "
OUTPUT_PREFIX = "CERTOPS "
# The cmd.exe limit is 8191 characters; stay well below it so a future bootstrap edit fails a test,
# not a production run.
COMMAND_LINE_LIMIT = 6000
STDIN_CHUNK = 96 * 1024  # below pywinrm's 150 KiB envelope after its own base64 step


@dataclass(frozen=True)
class Part:
    """One script to run, with its parameters (already validated)."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)


@cache
def script_text(name: str) -> str:
    if name not in (*SCRIPT_NAMES, "bootstrap"):
        raise KeyError(name)
    text = resources.files("host_actions").joinpath(f"ps/{name}.ps1").read_text(encoding="utf-8")
    # a piece several scripts share is written once, under ps/include/, and put in where named
    return _INCLUDE.sub(lambda m: _included(m.group(1)), text)


_INCLUDE = re.compile(r"^# certops: include (\w+\.ps1)\n", re.M)


def expand_includes(text: str, folders: Sequence[str] = ("ps/include",)) -> str:
    """`text` (a script kept outside ps/, such as ps/layers/) with each include line replaced by
    that file from the first of `folders` (inside the package) that has it."""

    def piece(name: str) -> str:
        for folder in folders:
            path = resources.files("host_actions").joinpath(f"{folder}/{name}")
            if path.is_file():
                return path.read_text(encoding="utf-8")
        raise FileNotFoundError(f"no {name} in {', '.join(folders)}")

    return _INCLUDE.sub(lambda m: piece(m.group(1)), text)


def _included(name: str) -> str:
    return resources.files("host_actions").joinpath(f"ps/include/{name}").read_text(encoding="utf-8")


def script_marker(text: str) -> str | None:
    """The script's name from its first line, which the simulator uses to recognise it."""
    first = text.lstrip("\ufeff").split("\n", 1)[0].strip()
    return first[len(MARKER) :].strip() if first.startswith(MARKER) else None


@cache
def bootstrap_command() -> str:
    # comment lines are for reviewers; each one costs ~2.7x its length on the command line
    code = "\n".join(ln for ln in script_text("bootstrap").splitlines() if not ln.lstrip().startswith("#"))
    encoded = base64.b64encode(code.encode("utf-16-le")).decode("ascii")
    command = f"powershell.exe -NoProfile -NonInteractive -EncodedCommand {encoded}"
    if len(command) > COMMAND_LINE_LIMIT:
        raise RuntimeError("bootstrap.ps1 has grown past the cmd.exe command-line budget")
    return command


def encode_job(parts: Sequence[Part]) -> bytes:
    job = {"parts": [{"name": p.name, "script": script_text(p.name), "params": dict(p.params)} for p in parts]}
    blob = json.dumps(job, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return base64.b64encode(blob) + b"\r\n"


def decode_job(stdin: bytes) -> list[dict[str, Any]]:
    """The inverse of encode_job; the simulator uses it to read what the bootstrap would read."""
    blob = base64.b64decode(b"".join(stdin.split()))
    parts = json.loads(blob.decode("utf-8"))["parts"]
    assert isinstance(parts, list)
    return parts


def chunks(data: bytes, size: int = STDIN_CHUNK) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def encode_part_output(doc: Mapping[str, Any]) -> str:
    """One output line as the bootstrap prints it (used by the simulator and tests)."""
    blob = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return OUTPUT_PREFIX + base64.b64encode(blob).decode("ascii")
