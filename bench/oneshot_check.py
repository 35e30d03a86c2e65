"""One-shot `certops check` (how Nagios, cron and Icinga run it, once per site): CPU and peak
memory of one whole process, side by side with curl and Debian's check_http
(monitoring-plugins-basic) and check_ssl_cert (monitoring-plugins-contrib), against one loopback
TLS server.

    .venv/bin/python bench/oneshot_check.py [--runs N] [--against REV] [--no-install]

The plugins are installed with apt-get when they are missing (as root or with sudo; the
packages' services kept from starting), unless --no-install. `--against REV` adds a row for
certops at another git revision (a worktree in a temp folder), so a change is measured before and
after in the same run. Figures are medians over N runs, in alternating order; each row's CPU and
peak RSS come from the process's own rusage (wait4), so a plugin's children (check_ssl_cert
runs openssl, curl and more) are counted with it. Every command must exit 0 (OK): a row whose
command failed is marked, so a fast failure cannot pass for a cheap check. The exit code is 0
when every row ran and exited 0, 1 otherwise, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from probe_throughput import apt_install  # noqa: E402 - bench/, the script's own folder

from bot.testbed.pki import MiniCA  # noqa: E402
from bot.testbed.tls_servers import Endpoint, TLSServers  # noqa: E402

HOST = "www.example.test"
PLUGIN_DIR = Path("/usr/lib/nagios/plugins")
PLUGIN_PACKAGES = {"check_http": "monitoring-plugins-basic", "check_ssl_cert": "monitoring-plugins-contrib"}
# programs a plugin needs that its package only recommends: check_ssl_cert refuses to run without `host`
PLUGIN_NEEDS = {"check_ssl_cert": {"host": "bind9-host"}}
# The launcher that measures peak memory. A child's ru_maxrss starts at the size of the process
# that forked it (exec records the old address space's peak): every command started from this
# Python process would show at least its ~35 MiB, curl included. GNU time is a ~1 MiB process;
# its %M is its child's own peak. CPU comes from wait4 on the launcher, less the launcher's own
# (measured running /bin/true).
TIME_BIN = "/usr/bin/time"
TIME_PACKAGE = "time"
TARGET_CPU_S = 0.2  # issue 10: one `certops check` process
TARGET_RSS_MIB = 40.0


def log(msg: str) -> None:
    print(f"[oneshot] {msg}", file=sys.stderr, flush=True)


def ensure_plugins() -> None:
    """apt-get install the monitoring-plugins packages whose plugin is missing; best effort (a
    row is left out when its plugin still is not there)."""
    wanted = {pkg for plugin, pkg in PLUGIN_PACKAGES.items() if not (PLUGIN_DIR / plugin).exists()}
    for needs in PLUGIN_NEEDS.values():
        wanted |= {pkg for program, pkg in needs.items() if shutil.which(program) is None}
    if not Path(TIME_BIN).exists():
        wanted.add(TIME_PACKAGE)
    missing = sorted(wanted)
    if not missing:
        return
    if shutil.which("apt-get") is None or (os.geteuid() != 0 and shutil.which("sudo") is None):
        log(f"{', '.join(missing)} not installed and no apt-get (or sudo): those rows are left out")
        return
    if not apt_install(missing, required=False):
        log("the missing plugins' rows are left out")


def run_once(
    argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None, rss_file: Path | None = None
) -> tuple[float, float, int]:
    """CPU seconds, peak RSS (MiB) and exit status of one command. With `rss_file`, it runs under
    GNU time, whose %M (written to `rss_file`) is the peak; else the peak is wait4's ru_maxrss,
    which is at least this process's size when it forked."""
    if rss_file is not None:
        argv = [TIME_BIN, "-f", "%M", "-o", str(rss_file), *argv]
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _pid, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped above
    # CPU: the process and every descendant it reaped (a plugin's openssl, curl...); peak RSS:
    # the largest single process of that tree, not their sum
    cpu, rss_mib = usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
    if rss_file is not None:
        # GNU time writes "Command exited with non-zero status N" first when the command fails
        rss_mib = int(rss_file.read_text().split()[-1]) / 1024
    return cpu, rss_mib, proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--against", metavar="REV", help="also measure certops at this git revision")
    parser.add_argument("--no-install", action="store_true", help="do not apt-get install missing plugins")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be >= 1")

    def on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    if not args.no_install:
        ensure_plugins()
    scratch = Path(tempfile.mkdtemp(prefix="certops-oneshot-"))
    samples: dict[str, list[tuple[float, float, int]]] = {}
    try:
        ca = MiniCA()
        ca_file = str(ca.write_ca(scratch / "ca.pem"))
        with TLSServers() as servers:
            port = servers.add(Endpoint(ca.issue(HOST))).port
            url = f"https://{HOST}:{port}/"
            check = ["check", url, "--resolve", f"{HOST}:{port}:127.0.0.1", "--ca-file", ca_file]
            rows: dict[str, tuple[list[str], dict[str, str] | None, Path | None]] = {
                "certops check": ([sys.executable, "-m", "bot.cli", *check], None, REPO),
            }
            if args.against:
                tree = scratch / "against"
                subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", str(tree), args.against], check=True)
                env = {**os.environ, "PYTHONPATH": str(tree)}
                rows[f"certops check @ {args.against}"] = ([sys.executable, "-m", "bot.cli", *check], env, tree)
            if shutil.which("curl"):
                rows["curl -I"] = (["curl", "-sSI", "--cacert", ca_file, "--resolve", f"{HOST}:{port}:127.0.0.1", url],
                                   None, None)  # fmt: skip
            plugins = {
                "check_http": ["-S", "--sni", "-H", HOST, "-I", "127.0.0.1", "-p", str(port)],
                # no SCTs from a private CA: --ignore-sct, or every run ends CRITICAL
                "check_ssl_cert": [
                    "-H",
                    "127.0.0.1",
                    "--sni",
                    HOST,
                    "-m",
                    HOST,
                    "-p",
                    str(port),
                    "-r",
                    ca_file,
                    "--ignore-sct",
                ],
            }
            for plugin, extra in plugins.items():
                path = PLUGIN_DIR / plugin
                if path.exists():
                    rows[plugin] = ([str(path), *extra], None, None)
                else:
                    log(f"{path} missing ({PLUGIN_PACKAGES[plugin]}): no row")
            rss_file = scratch / "time.out" if Path(TIME_BIN).exists() else None
            if rss_file is None:
                log(f"{TIME_BIN} missing: peak RSS is wait4's, at least this script's size at fork")
            samples = {name: [] for name in rows}
            launcher: list[float] = []
            for i in range(args.runs):
                order = list(rows) if i % 2 == 0 else list(reversed(rows))
                for name in order:
                    argv, row_env, cwd = rows[name]
                    samples[name].append(run_once(argv, row_env, cwd, rss_file))
                if rss_file is not None:
                    launcher.append(run_once(["/bin/true"], None, None, rss_file)[0])
    except KeyboardInterrupt:
        log("interrupted; server stopped and temp dir removed")
        return 130
    finally:
        if args.against:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(scratch / "against")],
                           check=False, capture_output=True)  # fmt: skip
        shutil.rmtree(scratch, ignore_errors=True)
    overhead = statistics.median(launcher) if launcher else 0.0
    medians = {
        name: (
            max(1e-4, statistics.median(c for c, _, _ in v) - overhead),
            statistics.median(r for _, r, _ in v),
            [s for _, _, s in v],
        )
        for name, v in samples.items()
    }
    base_cpu, base_rss, _ = medians["certops check"]
    print(
        f"one-shot check of one loopback TLS site, medians of {args.runs} runs (alternating order), "
        f"{os.cpu_count()} CPUs; "
        + (
            f"CPU less the launcher's own {1000 * overhead:.1f} ms, peak RSS from GNU time"
            if launcher
            else "peak RSS from wait4 (includes this script's size at fork)"
        )
    )
    print(f"{'command':<32} {'CPU s':>7} {'peak MiB':>9} {'CPU vs certops':>15} {'certops CPU / this':>19}  exit")
    broken = False
    for name, (cpu, rss, statuses) in medians.items():
        bad = [s for s in statuses if s != 0]
        broken |= bool(bad)
        exits = "0" if not bad else f"FAILED {len(bad)}/{len(statuses)} (exit {bad[0]})"
        print(f"{name:<32} {cpu:>7.3f} {rss:>9.1f} {cpu / base_cpu:>14.2f}x {base_cpu / cpu:>18.2f}x  {exits}")
    print()
    print(
        f"certops check: {base_cpu:.3f} s CPU (target <= {TARGET_CPU_S:g} s: "
        f"{'meets' if base_cpu <= TARGET_CPU_S else 'MISSES'}), {base_rss:.1f} MiB "
        f"(target <= {TARGET_RSS_MIB:g} MiB: {'meets' if base_rss <= TARGET_RSS_MIB else 'MISSES'})"
    )
    for other in ("check_ssl_cert", "check_http", "curl -I"):
        if other in medians:
            cpu, rss, _ = medians[other]
            print(f"certops check / {other}: CPU {base_cpu / cpu:.2f}x, peak RSS {base_rss / rss:.2f}x")
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
