"""The probe workers a process has, read from /proc (Linux)."""

from __future__ import annotations

from pathlib import Path

WORKER_MARK = "from bot.probe.pool import serve"  # on a probe worker's command line


def probe_workers_of(parent: int) -> list[int]:
    """The live (not zombie) probe workers whose parent is `parent`, by pid."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, ppid = (entry / "stat").read_text().rpartition(")")[2].split()[:2]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(ppid) == parent and WORKER_MARK in cmdline and state not in ("Z", "X"):
            found.append(int(entry.name))
    return sorted(found)
