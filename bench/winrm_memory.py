"""What a hostile WinRM host costs the client: time, peak memory above idle, requests made.

Run from the repository root:

    .venv/bin/python bench/winrm_memory.py                      # every mode, certops and pywinrm alone
    .venv/bin/python bench/winrm_memory.py --modes huge endless  # some of them
    .venv/bin/python bench/winrm_memory.py --baseline-root DIR   # add a column for another checkout

For each mode of tests/fakes/hostile_winrm.py (one server in this process, 100 MB for "huge"),
plus "under_limit" (a well-formed answer just below the default 16 MiB cap, the most a client
must read and parse),
each client runs in a child process of its own, so its memory is its own: the child reports its
resident set once everything is imported, then runs one inventory; this process reads the
child's VmHWM (peak resident set) from /proc and kills it at --wall seconds or --rss-cap-mb, so
a client with no overall deadline (pywinrm alone) is cut off rather than left running. The
figures are printed side by side, one row per mode:

* certops       host_actions.inventory from this tree (deadline --timeout, 16 MiB per answer)
* pywinrm       pywinrm's own Protocol: open_shell, run_command, get_command_output
* baseline      (with --baseline-root) host_actions.inventory from another checkout, e.g.
                `git archive HEAD | tar -x -C /tmp/before` for the code before a change

Target (the issue): every certops row ends by its deadline with a named problem, and peaks
under 100 MB above idle.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD_ENV = "CERTOPS_BENCH_HOSTILE_PW"  # noqa: S105 - a variable's name, not a secret
POLL = 0.01  # seconds between two looks at the child's memory
UNDER_LIMIT = 16 * 1024 * 1024 - 4096  # "under_limit": a well-formed answer just below the default cap


@dataclass
class Row:
    mode: str
    client: str
    outcome: str
    seconds: float
    peak_mb: float | None  # above idle
    receives: int
    requests: int
    decoy_hits: int


def _status_kb(pid: int, field: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def _measure(mode: str, label: str, client: str, root: Path, args: argparse.Namespace) -> Row:
    from tests.fakes.hostile_winrm import HostileWinRM

    size = UNDER_LIMIT if mode == "under_limit" else None
    hostile = "huge" if mode == "under_limit" else mode
    with HostileWinRM(hostile, size=size, limit=args.wall) as server:  # type: ignore[arg-type]
        env = {**os.environ, PASSWORD_ENV: server.sim.password, "PYTHONPATH": str(root)}
        job = {
            "client": client,
            "url": server.url,
            "user": server.sim.username,
            "transport": server.host_config().transport,
            "timeout": args.timeout,
            "root": str(root),
        }
        child = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(job)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        assert child.stdout is not None
        idle_line = child.stdout.readline().split()
        idle_kb = int(idle_line[1]) if idle_line[:1] == ["IDLE"] else None
        started = time.monotonic()
        peak_kb = 0
        outcome = ""
        while child.poll() is None:
            peak_kb = max(peak_kb, _status_kb(child.pid, "VmHWM") or 0)
            elapsed = time.monotonic() - started
            rss_mb = (_status_kb(child.pid, "VmRSS") or 0) / 1024
            if elapsed > args.wall or rss_mb > args.rss_cap_mb:
                child.kill()
                why = f"still running at {args.wall:g} s" if elapsed > args.wall else f"over {args.rss_cap_mb} MB"
                outcome = f"killed: {why}"
                break
            time.sleep(POLL)
        seconds = time.monotonic() - started
        rest = child.stdout.read()
        child.wait()
        if not outcome:
            result = next((line for line in rest.splitlines() if line.startswith("RESULT ")), "RESULT crashed")
            outcome = result.removeprefix("RESULT ")
        peak = (peak_kb - idle_kb) / 1024 if idle_kb is not None and peak_kb else None
        return Row(
            mode,
            label,
            outcome,
            seconds,
            peak,
            server.count("Receive"),
            len(server.requests),
            len(server.decoy_hits),
        )


def _child(job: dict[str, Any]) -> None:
    """Runs in the child: report idle memory, then one inventory (or pywinrm's own loop)."""
    sys.path[:] = [job["root"], *(p for p in sys.path if Path(p).resolve() != ROOT)]
    from winrm.protocol import Protocol

    from host_actions.errors import HostActionError
    from host_actions.inventory import inventory
    from host_actions.target import EnvSecret, Host

    host = Host(
        name="hostile",
        address=job["url"],
        transport=job["transport"],
        username=job["user"],
        password=EnvSecret(PASSWORD_ENV),
        allow_insecure_basic=job["transport"] == "basic",
        verify_tls=False,
        timeout=float(job["timeout"]),
    )
    print("IDLE", _status_kb(os.getpid(), "VmRSS"), flush=True)
    try:
        if job["client"] == "pywinrm":
            protocol = Protocol(
                endpoint=job["url"],
                transport=job["transport"],
                username=job["user"],
                password=os.environ[PASSWORD_ENV],
                server_cert_validation="ignore",
            )
            shell = protocol.open_shell()
            command = protocol.run_command(shell, "ipconfig")
            out, _err, code = protocol.get_command_output(shell, command)
            print(f"RESULT finished: exit {code}, {len(out):,} bytes of stdout", flush=True)
        else:
            inventory(host)
            print("RESULT finished without a problem", flush=True)
    except HostActionError as exc:
        print(f"RESULT {exc.kind}: {exc.message}", flush=True)
    except Exception as exc:
        print(f"RESULT {type(exc).__name__}: {' '.join(str(exc).split())[:140]}", flush=True)


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        # before anything imports host_actions: the child measures the checkout it was given
        _child(json.loads(sys.argv[2]))
        return 0
    from tests.fakes.hostile_winrm import MODES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = [*MODES, "under_limit"]
    parser.add_argument("--modes", nargs="*", default=modes, choices=modes)
    parser.add_argument("--clients", nargs="*", default=["certops", "pywinrm"], choices=["certops", "pywinrm"])
    parser.add_argument("--baseline-root", type=Path, help="another checkout whose host_actions to measure too")
    parser.add_argument("--timeout", type=float, default=10.0, help="the host's timeout (deadline), seconds")
    parser.add_argument("--wall", type=float, default=30.0, help="kill a client still running after this long")
    parser.add_argument("--rss-cap-mb", type=float, default=1500.0, help="kill a client whose memory passes this")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    clients: list[tuple[str, str, Path]] = [(c, c, ROOT) for c in args.clients]
    if args.baseline_root:
        clients.append(("baseline", "certops", args.baseline_root.resolve()))
    rows = [_measure(mode, label, kind, root, args) for mode in args.modes for label, kind, root in clients]
    if args.json:
        print(json.dumps([row.__dict__ for row in rows], indent=2))
        return 0
    _print(rows, args)
    failing = [r for r in rows if r.client == "certops" and (r.seconds > args.timeout + 6 or (r.peak_mb or 0) > 100)]
    return 1 if failing else 0


def _print(rows: list[Row], args: argparse.Namespace) -> None:
    print(
        f"hostile WinRM host: deadline {args.timeout:g} s, clients killed at {args.wall:g} s or {args.rss_cap_mb:g} MB"
    )
    columns = f"{'mode':<18} {'client':<9} {'seconds':>7} {'peak MB':>8} {'Receives':>8} {'requests':>8}"
    head = f"{columns} {'decoy':>5}  outcome"
    print(head)
    print("-" * len(head))
    for r in rows:
        peak = f"{r.peak_mb:8.1f}" if r.peak_mb is not None else f"{'?':>8}"
        outcome = r.outcome if len(r.outcome) <= 90 else r.outcome[:89] + "…"
        print(
            f"{r.mode:<18} {r.client:<9} {r.seconds:7.2f} {peak} {r.receives:8d} {r.requests:8d} "
            f"{r.decoy_hits:5d}  {outcome}"
        )


if __name__ == "__main__":
    sys.exit(main())
