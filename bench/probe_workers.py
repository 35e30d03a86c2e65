"""Probe workers benchmark (issue 10): the same sites probed with [bot] probe_workers = 1 (in the
bot's own process, engine.probe_many) and through bot.probe.pool.ProbePool with 2 workers.

Run from the repository root:

    .venv/bin/python bench/probe_workers.py            # 3,000 sites, c=50, medians of 3 runs
    .venv/bin/python bench/probe_workers.py --quick    # a smoke run in a few seconds

It starts one nginx with --nginx-workers worker processes (2 by default, so the server is not
the bottleneck) on --ports loopback ports, TLS 1.2/1.3 with an ECDSA P-256 certificate for
bench.test from a private CA made for the run, session tickets and cache off (every probe is a
full handshake), answering `return 200`. Every site is its own ProbeTarget (its own name, so the
pool's hash spreads them), one probe each per run. Modes, in alternating order, each after an
untimed warm-up:

    workers=1        bot.probe.engine.probe_many in this process (what probe_workers = 1 runs)
    pool of 1        ProbePool(1): one worker process (the cost of the pipe, no gain)
    workers=2        ProbePool(2): what probe_workers = 2 runs

CPU is split: this process's (getrusage: the probing itself for workers=1, the dispatch for the
pools), the workers' (/proc/<pid>/stat utime+stime) and nginx's (master and workers). nginx
shares the machine's cores with the prober, so on a 2-core machine the ratio can't reach 2.0.
The exit code is 1 when any probe failed (a broken run must not look fast).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from probe_throughput import HOSTNAME, free_ports, nginx_conf  # noqa: E402 - bench/, the script's own folder

from bot import eventloop  # noqa: E402 - after the path is set, as the script runs from anywhere
from bot.probe.engine import probe_many  # noqa: E402
from bot.probe.model import ProbeResult, ProbeTarget, Status  # noqa: E402
from bot.probe.pool import ProbePool  # noqa: E402
from bot.testbed.pki import MiniCA  # noqa: E402

NGINX_BIN = "/usr/sbin/nginx"
MODES = ("workers=1", "pool of 1", "workers=2")
TARGET_RATIO = 1.7  # workers=2 vs workers=1 throughput, on a 2-core machine
TICK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


@dataclass(frozen=True)
class Run:
    mode: str
    probes: int
    failures: int
    wall_s: float
    bot_cpu_s: float  # this process
    worker_cpu_s: float  # the pool's workers
    nginx_cpu_s: float
    others_cpu_s: float  # every other process on the machine meanwhile (a shared machine is noisy)
    first_failure: str = ""

    @property
    def per_s(self) -> float:
        return self.probes / self.wall_s if self.wall_s else 0.0

    def ms(self, seconds: float) -> float:
        return 1000.0 * seconds / self.probes if self.probes else 0.0


# --------------------------------------------------------------------------- CPU accounting


def proc_cpu(pid: int) -> float:
    """utime + stime of a live process, in seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # fields 14 and 15 of stat(5)


def children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == parent:
                    found.append(int(entry.name))
    return found


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def steal_share(before: list[int], after: list[int]) -> float:
    spent = [b - a for a, b in zip(before, after, strict=True)]
    return spent[7] / sum(spent) if sum(spent) else 0.0  # the 8th field of the cpu line: steal


def busy_s(before: list[int], after: list[int]) -> float:
    """CPU seconds the whole machine spent busy (not idle, not waiting, not stolen)."""
    spent = [b - a for a, b in zip(before, after, strict=True)]
    return (sum(spent) - spent[3] - spent[4] - spent[7]) / TICK


def cpu_line() -> list[int]:
    return [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]


# --------------------------------------------------------------------------- the server


def wait_listening(port: int, proc: subprocess.Popen[bytes], log_file: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited with {proc.returncode}:\n{log_file.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nginx is not listening on 127.0.0.1:{port} after 15 s")


# --------------------------------------------------------------------------- the runs


async def measure(
    mode: str,
    targets: list[ProbeTarget],
    warmup: list[ProbeTarget],
    concurrency: int,
    nginx_pids: Callable[[], list[int]],
) -> Run:
    pool = ProbePool(1 if mode == "pool of 1" else 2) if mode != "workers=1" else None

    def probing(batch: list[ProbeTarget]) -> Awaitable[list[ProbeResult]]:
        gate = asyncio.Semaphore(concurrency)  # as SiteProber shares [bot] probe_concurrency
        if pool is None:
            return probe_many(batch, gate=gate)
        return pool.probe_many(batch, gate=gate)

    try:
        if pool is not None:
            await pool.start()
        await probing(warmup)
        workers = pool.pids() if pool is not None else []
        servers = nginx_pids()
        cpu0, wcpu0, ncpu0 = self_cpu(), sum(map(proc_cpu, workers)), sum(map(proc_cpu, servers))
        machine0 = cpu_line()
        started = time.perf_counter()
        results = await probing(targets)
        wall = time.perf_counter() - started
        cpu1, wcpu1, ncpu1 = self_cpu(), sum(map(proc_cpu, workers)), sum(map(proc_cpu, servers))
        machine = busy_s(machine0, cpu_line())
    finally:
        if pool is not None:
            await pool.close()
    bad = [r for r in results if r.status is not Status.OK]
    first = f"{bad[0].target.url}: {[p.code for p in bad[0].problems]}" if bad else ""
    ours = (cpu1 - cpu0) + (wcpu1 - wcpu0) + (ncpu1 - ncpu0)
    others = max(0.0, machine - ours)
    return Run(mode, len(results), len(bad), wall, cpu1 - cpu0, wcpu1 - wcpu0, ncpu1 - ncpu0, others, first)


def median_run(runs: list[Run]) -> Run:
    return Run(
        runs[0].mode,
        runs[0].probes,
        sum(r.failures for r in runs),
        statistics.median(r.wall_s for r in runs),
        statistics.median(r.bot_cpu_s for r in runs),
        statistics.median(r.worker_cpu_s for r in runs),
        statistics.median(r.nginx_cpu_s for r in runs),
        statistics.median(r.others_cpu_s for r in runs),
        next((r.first_failure for r in runs if r.first_failure), ""),
    )


def ceiling_lines(one: Run, two: Run) -> list[str]:
    """What the machine's cores allow 2 workers at the CPU each probe measured (prober and nginx
    together), as x workers=1: nginx shares the cores, so on 2 cores the target can be out of
    reach however well the workers scale; and the share of that ceiling reached."""
    per_probe = (two.bot_cpu_s + two.worker_cpu_s + two.nginx_cpu_s) / two.probes if two.probes else 0.0
    if per_probe <= 0 or one.per_s <= 0:
        return []
    idle = CORES / per_probe / one.per_s
    others = max(0.0, CORES - two.others_cpu_s / two.wall_s) / per_probe / one.per_s if two.wall_s else idle
    own = two.nginx_cpu_s / two.probes * 1000
    prober = (two.bot_cpu_s + two.worker_cpu_s) / two.probes * 1000
    # the most 2 workers could give with nginx on cores of its own: the workers' CPU-bound rate
    alone = min(2 / (two.worker_cpu_s / two.probes), 1 / (two.bot_cpu_s / two.probes)) if two.worker_cpu_s else 0.0
    return [
        f"ceiling on these {CORES} cores at the measured CPU per probe (prober {prober:.3f} ms + nginx {own:.3f} ms): "
        f"{idle:.2f}x workers=1 on an idle machine, {others:.2f}x with the other processes' measured share; "
        f"reached {two.per_s / one.per_s / others:.0%} of the latter",
        f"projected with nginx on cores of its own (not measured): {alone / one.per_s:.2f}x "
        "(2 workers CPU-bound at their own CPU per probe, the dispatch on one core)",
    ]


def render(medians: dict[str, Run], meta: str) -> str:
    head = (
        f"{'mode':<10} | {'probes/s':>9} | {'x workers=1':>11} | {'bot CPU ms/probe':>16} | "
        f"{'workers CPU ms/probe':>20} | {'total ms/probe':>14} | {'nginx ms/probe':>14} | {'others busy':>11} | "
        f"{'failed':>6}"
    )
    lines = [meta, "", head, "-" * len(head)]
    base = medians["workers=1"].per_s
    for mode in MODES:
        r = medians.get(mode)
        if r is None:
            continue
        total = r.ms(r.bot_cpu_s + r.worker_cpu_s)
        lines.append(
            f"{mode:<10} | {r.per_s:>9.0f} | {r.per_s / base:>10.2f}x | {r.ms(r.bot_cpu_s):>16.3f} | "
            f"{r.ms(r.worker_cpu_s):>20.3f} | {total:>14.3f} | {r.ms(r.nginx_cpu_s):>14.3f} | "
            f"{100 * r.others_cpu_s / r.wall_s / CORES:>10.0f}% | {r.failures:>6}"
        )
    two = medians.get("workers=2")
    if two is not None:
        ratio = two.per_s / base
        verdict = "meets" if ratio >= TARGET_RATIO else "misses"
        lines += ["", f"workers=2 vs workers=1: {ratio:.2f}x the throughput ({verdict} the {TARGET_RATIO}x target)"]
        lines += ceiling_lines(medians["workers=1"], two)
    for r in medians.values():
        if r.first_failure:
            lines.append(f"first failure ({r.mode}): {r.first_failure}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, default=3000, help="sites (probes per run)")
    ap.add_argument("--concurrency", type=int, default=50, help="probes in flight ([bot] probe_concurrency)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per mode, alternating order")
    ap.add_argument("--ports", type=int, default=8, help="nginx loopback ports")
    ap.add_argument("--nginx-workers", type=int, default=2)
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of: {', '.join(MODES)}")
    ap.add_argument("--quick", action="store_true", help="300 sites, 1 run")
    args = ap.parse_args(argv)
    if args.quick:
        args.sites, args.repeat = 300, 1
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if "workers=1" not in modes or any(m not in MODES for m in modes):
        ap.error(f"--modes must include workers=1 and name only {', '.join(MODES)}")
    if not Path(NGINX_BIN).exists():
        print(f"{NGINX_BIN} is missing: apt-get install nginx", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="certops-bench-workers-") as name:
        tmp = Path(name)
        ca = MiniCA("certops bench root")
        ca_file = str(ca.write_ca(tmp / "ca.pem"))
        cert, key = ca.issue(HOSTNAME, days_left=60).write(tmp, "leaf")
        ports = free_ports(args.ports)
        for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (tmp / f"nginx_{d}").mkdir()
        conf = tmp / "nginx.conf"
        conf.write_text(nginx_conf(tmp, ports, cert, key, args.concurrency, workers=args.nginx_workers))
        log_file = tmp / "nginx-error.log"
        nginx = subprocess.Popen([NGINX_BIN, "-p", str(tmp), "-e", str(log_file), "-c", str(conf)])
        try:
            for port in ports:
                wait_listening(port, nginx, log_file)
            targets = [
                ProbeTarget(
                    url=f"https://{HOSTNAME}:{ports[i % len(ports)]}/",
                    hostname=HOSTNAME,
                    port=ports[i % len(ports)],
                    connect_host="127.0.0.1",
                    site=f"site-{i}",
                    ca_file=ca_file,
                    timeout=10.0,
                )
                for i in range(args.sites)
            ]
            warmup = targets[: 2 * args.concurrency]

            def nginx_pids() -> list[int]:
                return [nginx.pid, *children(nginx.pid)]

            runs: dict[str, list[Run]] = {m: [] for m in modes}
            before = cpu_line()
            for rep in range(args.repeat):
                for mode in modes if rep % 2 == 0 else reversed(modes):
                    run = eventloop.run(measure(mode, targets, warmup, args.concurrency, nginx_pids))
                    runs[mode].append(run)
                    others = 100 * run.others_cpu_s / run.wall_s / CORES
                    print(
                        f"  run {rep + 1} {mode:<10} {run.per_s:7.0f} probes/s, others busy {others:.0f}%",
                        file=sys.stderr,
                        flush=True,
                    )
            stolen = steal_share(before, cpu_line())
        finally:
            nginx.terminate()
            try:
                nginx.wait(10)
            except subprocess.TimeoutExpired:
                nginx.kill()
                nginx.wait()

    medians = {m: median_run(r) for m, r in runs.items()}
    meta = (
        f"probe workers: {args.sites:,} sites, one probe each per run, concurrency {args.concurrency}, "
        f"medians of {args.repeat} run(s) in alternating order; {os.cpu_count()} CPUs, "
        f"nginx with {args.nginx_workers} worker(s) on {len(ports)} ports; event loop {eventloop.name()}; "
        f"{100 * stolen:.0f}% of CPU time stolen by the host meanwhile"
    )
    print(render(medians, meta))
    return 1 if any(r.failures for r in medians.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
