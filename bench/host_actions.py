"""Host-action benchmark: inventory + diagnose of one large simulated IIS host, and of 50 at once.

Run from the repository root:

    .venv/bin/python bench/host_actions.py            # defaults: 200 certs, 50 bindings, 100 tasks
    .venv/bin/python bench/host_actions.py --quick    # a smoke run in a few seconds
    .venv/bin/python bench/host_actions.py --json     # machine-readable

What it measures (issue 3, "Benchmark"):

* per action on one host: WS-Man round trips (HTTP POSTs to /wsman), shells, commands and wall
  time (median of --runs), through pywinrm against host_actions.simulator on loopback;
* inventory + diagnose of one host, then of --hosts hosts in parallel (one simulator each,
  worker threads as the bot runs them), and the ratio of the two wall times (target < 3);
* twice: "bare" (no simulated latency, so the figure is this process's CPU: client, 50 servers
  and the GIL) and "modelled" (--rtt per round trip and --script-seconds per command, the shape
  of a real host where PowerShell's start and the scripts dominate).

The simulator answers from Python, not PowerShell: absolute times say nothing about a real host;
the round-trip counts and the parallel/serial ratio are the figures that carry over.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import Host, SecretRef
from host_actions import actions
from host_actions.simulator import Faults, WinRMSimulator
from host_actions.simulator.scenarios import large_host

PASSWORD_ENV = "CERTOPS_BENCH_WINRM_PASSWORD"  # noqa: S105 - a variable's name, not a secret


@dataclass
class Sample:
    name: str
    round_trips: int
    shells: int
    commands: int
    seconds: float


def _timed(sim: WinRMSimulator, fn: Callable[[], Any]) -> tuple[float, int, int, int]:
    before = len(sim.requests)
    started = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - started
    made = sim.requests[before:]
    return elapsed, len(made), made.count("Create"), made.count("Command")


def per_action(sim: WinRMSimulator, host: Host, runs: int) -> list[Sample]:
    model = sim.model
    old = min(model.certs, key=lambda c: c.not_before)
    site = model.sites[0]
    newest = next(c for c in model.certs if c.thumbprint == site.bindings[-1].thumbprint)
    # one renewal without the step, so the first add-post-renew-step run really writes
    steps = model.renewals[0].data["InstallationPluginOptions"]
    model.renewals[0].data["InstallationPluginOptions"] = [st for st in steps if "Script" not in st]
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("inventory+diagnose", lambda: actions.diagnose_host(host)),
        ("verify-binding", lambda: actions.verify_binding(host)),
        ("audit-tasks", lambda: actions.audit_tasks(host)),
        ("repair-store", lambda: actions.repair_store(host, old.thumbprint)),
        ("rebind", lambda: actions.rebind(host, site.name, newest.thumbprint)),
        ("add-post-renew-step", lambda: actions.add_post_renew_step(host, model.renewals[0].id)),
    ]
    samples = []
    for name, fn in cases:
        results = [_timed(sim, fn) for _ in range(runs)]
        seconds = statistics.median(r[0] for r in results)
        _, trips, shells, commands = results[0]
        samples.append(Sample(name, trips, shells, commands, seconds))  # counts: first run
    return samples


def _serve(conn: Connection, hosts: int, faults: Faults, sizes: tuple[int, int, int]) -> None:
    """Child process: the simulated hosts, so their CPU is not charged to the client."""
    sims = [WinRMSimulator(large_host(*sizes), faults=faults).start() for _ in range(hosts)]
    conn.send([(s.url, s.password) for s in sims])
    conn.recv()  # until the parent is done
    for s in sims:
        s.stop()


def parallel(hosts: int, faults: Faults, sizes: tuple[int, int, int]) -> tuple[float, float, float]:
    """(wall time of one inventory+diagnose, wall of `hosts` at once, client CPU per host).

    The simulated hosts live in child processes (up to one per spare CPU) so that their CPU is
    neither charged to the client nor serialised behind one GIL: real hosts are separate machines.
    """
    ctx = multiprocessing.get_context("spawn")
    groups = max(1, min(hosts, (os.cpu_count() or 2) - 1))
    sizes_per = [hosts // groups + (1 if i < hosts % groups else 0) for i in range(groups)]
    pipes, servers = [], []
    for count in sizes_per:
        parent, child = ctx.Pipe()
        server = ctx.Process(target=_serve, args=(child, count, faults, sizes))
        server.start()
        pipes.append(parent)
        servers.append(server)
    try:
        endpoints = [e for parent in pipes for e in parent.recv()]
        os.environ[PASSWORD_ENV] = endpoints[0][1]
        configs = [
            Host(
                f"iis{i:02d}",
                url,
                transport="basic",
                username="certops",
                password=SecretRef("bench", env=PASSWORD_ENV),
                allow_insecure_basic=True,
                timeout=120,
            )
            for i, (url, _pw) in enumerate(endpoints)
        ]
        actions.diagnose_host(configs[0])  # warm-up: imports, first connection
        started, cpu = time.perf_counter(), time.process_time()
        actions.diagnose_host(configs[1 % hosts])
        one, one_cpu = time.perf_counter() - started, time.process_time() - cpu
        with ThreadPoolExecutor(max_workers=hosts) as pool:
            started = time.perf_counter()
            results = list(pool.map(lambda h: actions.diagnose_host(h)[2], configs))
            many = time.perf_counter() - started
        assert all(r.round_trips == 6 for r in results)
        return one, many, one_cpu
    finally:
        for parent in pipes:
            parent.send("stop")
        for server in servers:
            server.join(timeout=30)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--certs", type=int, default=200)
    ap.add_argument("--bindings", type=int, default=50)
    ap.add_argument("--tasks", type=int, default=100)
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rtt", type=float, default=0.02, help="modelled seconds per round trip (default 0.02)")
    ap.add_argument("--script-seconds", type=float, default=1.0, help="modelled seconds per command (default 1.0)")
    ap.add_argument("--quick", action="store_true", help="10 hosts, 1 run")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.hosts, args.runs = 10, 1
    sizes = (args.certs, args.bindings, args.tasks)

    sim = WinRMSimulator(large_host(*sizes)).start()
    try:
        os.environ[PASSWORD_ENV] = sim.password
        host = sim.host_config("bench", timeout=120, password_env=PASSWORD_ENV)
        actions.diagnose_host(host)  # warm-up
        samples = per_action(sim, host, args.runs)
    finally:
        sim.stop()

    bare = parallel(args.hosts, Faults(), sizes)
    modelled = parallel(args.hosts, Faults(round_trip_delay=args.rtt, script_seconds=args.script_seconds), sizes)

    report = {
        "host": {"certs": args.certs, "bindings": args.bindings, "tasks": args.tasks},
        "actions": [s.__dict__ for s in samples],
        "parallel": {
            "hosts": args.hosts,
            "bare": {"one_s": bare[0], "all_s": bare[1], "ratio": bare[1] / bare[0], "client_cpu_s": bare[2]},
            "modelled": {
                "rtt_s": args.rtt,
                "script_s": args.script_seconds,
                "one_s": modelled[0],
                "all_s": modelled[1],
                "ratio": modelled[1] / modelled[0],
            },
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"one simulated host: {args.certs} certificates, {args.bindings} bindings, {args.tasks} tasks")
    print(f"{'action':<22}{'round trips':>12}{'shells':>8}{'commands':>10}{'wall ms':>10}")
    for s in samples:
        print(f"{s.name:<22}{s.round_trips:>12}{s.shells:>8}{s.commands:>10}{s.seconds * 1000:>10.1f}")
    for label, (one, many, cpu) in (("bare", bare), ("modelled", modelled)):
        print(
            f"{label:<9} inventory+diagnose: 1 host {one * 1000:.0f} ms (client CPU {cpu * 1000:.0f} ms), "
            f"{args.hosts} hosts in parallel {many * 1000:.0f} ms, ratio {many / one:.2f} (target < 3)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
