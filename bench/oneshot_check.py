"""One-shot `certops check` (how Nagios, cron and Icinga run it, once per site): CPU and peak
memory of one whole process, side by side with curl and, when installed, Debian's check_http
and check_ssl_cert, against one loopback TLS server.

    .venv/bin/python bench/oneshot_check.py [--runs N] [--against REV]

`--against REV` adds a row for certops at another git revision (a worktree in a temp folder),
so a change is measured before and after in the same run. Figures are medians over N runs, in
alternating order; the ratios are to the certops row.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.testbed.pki import MiniCA  # noqa: E402
from bot.testbed.tls_servers import Endpoint, TLSServers  # noqa: E402

HOST = "www.example.test"


def run_once(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[float, float]:
    """CPU seconds and peak RSS (MiB) of one child process, from its own rusage (wait4)."""
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, _status, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0  # reaped above
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--against", metavar="REV", help="also measure certops at this git revision")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="certops-oneshot-"))
    ca = MiniCA()
    ca_file = str(ca.write_ca(scratch / "ca.pem"))
    try:
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
                "check_ssl_cert": ["-H", "127.0.0.1", "-n", HOST, "-p", str(port), "-r", ca_file],
            }
            for plugin, extra in plugins.items():
                path = Path("/usr/lib/nagios/plugins") / plugin
                if path.exists():
                    rows[plugin] = ([str(path), *extra], None, None)
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
            for i in range(args.runs):
                order = list(rows) if i % 2 == 0 else list(reversed(rows))
                for name in order:
                    argv, env, cwd = rows[name]
                    samples[name].append(run_once(argv, env, cwd))
    finally:
        if args.against:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(scratch / "against")],
                           check=False, capture_output=True)  # fmt: skip
        shutil.rmtree(scratch, ignore_errors=True)
    base_cpu = statistics.median(c for c, _ in samples["certops check"])
    print(f"{'command':<32} {'CPU s':>7} {'peak MiB':>9} {'CPU vs certops':>15}")
    for name, values in samples.items():
        cpu = statistics.median(c for c, _ in values)
        rss = statistics.median(r for _, r in values)
        print(f"{name:<32} {cpu:>7.3f} {rss:>9.1f} {cpu / base_cpu:>14.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
