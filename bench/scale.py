"""Scale benchmark: 10,000 sites in one `certops run` process, against loopback TLS endpoints.

Run from the repository root:

    .venv/bin/python bench/scale.py                  # 10,000 sites at 60 s and at 30 s (about 4 minutes)
    .venv/bin/python bench/scale.py --quick          # 1,000 sites at 30 s and 10 s (about 2 minutes)
    .venv/bin/python bench/scale.py --interval 300s --duration 420   # the real 5-minute interval
    .venv/bin/python bench/scale.py --json           # the same, machine-readable

What it does (issue 2, "10,000 sites per 5-minute round on 2 cores"):

* a child process runs `--endpoints` loopback TLS servers (bot/testbed/tls_servers.py, one ECDSA
  leaf for localhost and bench.test from a private CA, bot/testbed/pki.py) and the Slack Web API
  stand-in (tests/fakes/slack_api.py); all healthy;
* for each `--interval` it writes a config of `--sites` `[[sites]]` entries, site i at
  `https://localhost:<port i mod endpoints>/` with the run's CA as `ca_file` (so every site is one
  probe of the public path, a real getaddrinfo of localhost included), `[chat.slack] mode = "http"`
  against the stand-in, a temp database, and starts `.venv/bin/certops run -c CONFIG` as a child;
* the work per second is what a 10,000-site fleet costs: 10,000 sites every 300 s is 33 probes/s;
  a shorter interval compresses time (60 s: 5x, 167 probes/s; 30 s: 10x, 333 probes/s);
* while it runs it samples the bot's CPU time and peak RSS (/proc), polls `/healthz` every 50 ms
  from a child process of its own (so this process's own work never delays the poll) and keeps
  the longest answer, reads the bot's database read-only every 2 s (`probe_results.checked_at`:
  when each site was probed), scrapes `/metrics` every 15 s as Prometheus would, and, once every
  site has been probed, sends a signed `/ssl status` slash command every 30 s and times the HTTP
  answer (the Slack ack);
* at the end it reads `certops_scheduler_lag_seconds` (p50/p99 from the buckets) and the
  `certops_probe_success` series from `/metrics`, stops the bot with SIGTERM and prints a table,
  with the bare engine's CPU per probe on the same endpoints (bench/probe_throughput.py's certops
  worker, run in this same invocation before the bot) as a ratio.

Everything binds 127.0.0.1. Every child (servers, bot, poller, engine worker) and the temp dir are
removed on any exit, also on Ctrl-C, SIGTERM and SIGHUP; every wait has a timeout.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import http.client
import itertools
import json
import math
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

BENCH = Path(__file__).resolve().parent
REPO_ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))  # probe_throughput (its helpers and its engine worker)
sys.path.insert(0, str(REPO_ROOT))  # bot.testbed, tests.fakes (the tests package is not installed)

import probe_throughput as pt  # noqa: E402 - after the path set-up above

from bot.probe.certinfo import parse_iso_utc  # noqa: E402 - after the path set-up above

CERTOPS_BIN = REPO_ROOT / ".venv" / "bin" / "certops"
ROUND_SECONDS = 300  # the production interval the compression factor is stated against
SLACK_PATH = "/slack/events"
BOT_TOKEN_ENV = "CERTOPS_BENCH_SLACK_BOT_TOKEN"  # noqa: S105 - the name of a variable, not a secret
SIGNING_SECRET_ENV = "CERTOPS_BENCH_SLACK_SIGNING_SECRET"  # noqa: S105 - a variable name
SIGNING_SECRET = "bench-signing-secret-not-real"  # noqa: S105 - made up for this local run
HEALTHZ_EVERY = 0.05
HEALTHZ_TIMEOUT = 5.0
DB_EVERY = 2.0
PROC_EVERY = 0.5
# targets (issue 2)
TARGET_LAG_P99 = 1.0
TARGET_RSS_MB = 300.0
TARGET_ACK_MS = 300.0
TARGET_STALL_MS = 100.0


def log(msg: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- pure helpers


def parse_seconds(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (write 60s, 5m, or seconds)")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def jitter_of(interval: float) -> float:
    """What bot/scheduler.py adds to each next run: uniform(0, min(interval / 10, 30))."""
    return min(interval / 10, 30.0)


def spread_of(interval: float) -> float:
    """The latest first run bot/scheduler.py may plan: it spreads first runs over at most one
    interval (uniform(0, interval) now; uniform(0, min(interval, 60 s)) before 2026-12-01 22:30)."""
    return interval


def site_name(i: int) -> str:
    return f"s{i:05d}"


def bot_config(
    *,
    sites: int,
    ports: Sequence[int],
    interval: float,
    ca_file: str,
    listen_port: int,
    database: str,
    concurrency: int,
    api_url: str | None,
) -> str:
    head = f"""\
[bot]
listen = "127.0.0.1:{listen_port}"
database = "{database}"
log_level = "warning"
probe_concurrency = {concurrency}
digest_at = ""

"""
    slack = (
        f"""
[chat.slack]
mode = "http"
channel = "C0BENCH"
bot_token_env = "{BOT_TOKEN_ENV}"
signing_secret_env = "{SIGNING_SECRET_ENV}"
api_url = "{api_url}"

[policy]
approvers = ["slack:U0BENCH"]
"""
        if api_url
        else ""
    )
    parts = [head]
    for i in range(sites):
        parts.append(
            f'[[sites]]\nname = "{site_name(i)}"\nurl = "https://localhost:{ports[i % len(ports)]}/"\n'
            f'ca_file = "{ca_file}"\ninterval = "{interval:g}s"\ntimeout = "10s"\n\n'
        )
    parts.append(slack)
    return "".join(parts)


def parse_metrics(text: str) -> dict[str, Any]:
    """The lag histogram (cumulative buckets, count, sum) and the certops_probe_success series."""
    buckets: list[tuple[float, float]] = []
    count = total = 0.0
    series = ok = 0
    for line in text.splitlines():
        if line.startswith("certops_scheduler_lag_seconds_bucket{"):
            le = re.search(r'le="([^"]+)"', line)
            if le:
                buckets.append((math.inf if le.group(1) == "+Inf" else float(le.group(1)), float(line.split()[-1])))
        elif line.startswith("certops_scheduler_lag_seconds_count"):
            count = float(line.split()[-1])
        elif line.startswith("certops_scheduler_lag_seconds_sum"):
            total = float(line.split()[-1])
        elif line.startswith("certops_probe_success{"):
            series += 1
            ok += float(line.split()[-1]) == 1.0
    buckets.sort()
    return {"lag_buckets": buckets, "lag_count": count, "lag_sum": total, "success_series": series, "success_ok": ok}


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus's histogram_quantile: linear inside the bucket; the +Inf bucket answers its lower bound."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_n = 0.0, 0.0
    for le, n in buckets:
        if n >= rank:
            if math.isinf(le):
                return prev_le
            if n == prev_n:
                return le
            return prev_le + (le - prev_le) * (rank - prev_n) / (n - prev_n)
        prev_le, prev_n = le, n
    return prev_le


def pct(values: Sequence[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))]


def epoch_of(checked_at: str) -> float:
    return parse_iso_utc(checked_at).timestamp()


# --------------------------------------------------------------------------- children


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM if this process dies without cleaning up (SIGKILL)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def serve_endpoints_main(workdir: str, endpoints: int) -> int:
    """Child: the loopback TLS endpoints and the Slack stand-in, until stdin closes or SIGTERM."""
    import asyncio

    from bot.testbed.pki import MiniCA
    from bot.testbed.tls_servers import Endpoint, TLSServers
    from tests.fakes.slack_api import SlackAPI

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop

    def until_stdin_closes() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=until_stdin_closes, daemon=True).start()

    ca = MiniCA("certops scale bench CA")
    ca_file = ca.write_ca(Path(workdir) / "ca.pem")
    leaf = ca.issue("localhost", pt.HOSTNAME, "127.0.0.1", days_left=60)

    async def main() -> None:
        with TLSServers() as servers:
            ports = [servers.add(Endpoint(leaf)).port for _ in range(endpoints)]
            async with SlackAPI() as api:
                print(
                    json.dumps(
                        {
                            "ports": ports,
                            "ca_file": str(ca_file),
                            "api_url": api.api_url,
                            "response_url": api.response_url(),
                        }
                    ),
                    flush=True,
                )
                while not stop.is_set():
                    await asyncio.sleep(0.2)
                    api.calls.clear()  # the stand-in records every call; keep its memory flat

    asyncio.run(main())
    return 0


def poll_healthz_main(url_port: int, out: str) -> int:
    """Child: GET /healthz every 50 ms on a new connection (as a load balancer does); on SIGTERM
    write every sample (monotonic start, seconds, status) to `out` as JSON."""
    samples: list[tuple[float, float, int]] = []
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    deadline = time.monotonic() + 3600  # bounded even if nobody tells us to stop
    while not stop.is_set() and os.getppid() == parent and time.monotonic() < deadline:
        t0 = time.monotonic()
        status = 0
        conn = http.client.HTTPConnection("127.0.0.1", url_port, timeout=HEALTHZ_TIMEOUT)
        try:
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            resp.read()
            status = resp.status
        except (OSError, http.client.HTTPException):
            status = 0
        finally:
            conn.close()
        took = time.monotonic() - t0
        samples.append((t0, took, status))
        rest = HEALTHZ_EVERY - took
        if status == 0 and took < 0.01:
            rest = 0.1  # not listening yet
        if rest > 0:
            stop.wait(rest)
    Path(out).write_text(json.dumps(samples))
    return 0


# --------------------------------------------------------------------------- the measuring side


@dataclass
class ProcSample:
    t: float
    cpu_s: float
    rss_kib: int
    hwm_kib: int
    threads: int


def proc_sample(pid: int) -> ProcSample | None:
    try:
        cpu = pt._proc_cpu_s(pid)
        status = Path(f"/proc/{pid}/status").read_text()
    except (OSError, ValueError, IndexError):
        return None
    vals = {}
    for line in status.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            vals[key] = int(rest.split()[0])
    return ProcSample(time.monotonic(), cpu, vals.get("VmRSS", 0), vals.get("VmHWM", 0), vals.get("Threads", 0))


def http_get(port: int, path: str, timeout: float) -> tuple[int, bytes, float]:
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read(), time.perf_counter() - t0
    finally:
        conn.close()


class SlashCommands:
    """Signed /ssl commands to the bot's Slack http mode, exactly as bench/chat_ack.py sends them."""

    def __init__(self, port: int, response_url: str) -> None:
        from slack_sdk.signature import SignatureVerifier

        self.port = port
        self.response_url = response_url
        self.verifier = SignatureVerifier(SIGNING_SECRET)
        self.seq = 0

    def send(self, text: str, timeout: float = 10.0) -> tuple[int, float, str]:
        self.seq += 1
        body = urlencode(
            {
                "team_id": "T0TEST",
                "channel_id": "C0BENCH",
                "user_id": "U0BENCH",
                "user_name": "bench",
                "command": "/ssl",
                "text": text,
                "response_url": self.response_url,
                "trigger_id": f"bench.{self.seq}",
            }
        )
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": self.verifier.generate_signature(timestamp=ts, body=body) or "",
        }
        t0 = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("POST", SLACK_PATH, body=body.encode(), headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            took = time.perf_counter() - t0
        except (OSError, http.client.HTTPException) as exc:
            return 0, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()
        try:
            text_out = str(json.loads(data).get("text", ""))
        except ValueError:
            text_out = data.decode(errors="replace")
        return resp.status, took, text_out


@dataclass
class Phase:
    """What one `certops run` at one interval measured."""

    sites: int
    interval: float
    duration: float
    concurrency: int
    error: str = ""
    startup_s: float = 0.0
    startup_cpu_s: float = 0.0
    window_s: float = 0.0
    probes: int = 0
    probes_per_s: float = 0.0
    probes_per_s_busiest_10s: float = 0.0
    sites_probed: int = 0
    round1_s: float | None = None
    gap_p50_s: float | None = None
    gap_max_s: float | None = None
    gaps: int = 0
    overdue_at_end: int = 0
    not_ok_results: int = 0
    cpu_s: float = 0.0
    cpu_ms_per_probe: float = 0.0
    cpu_cores_busy: float = 0.0
    host_busy_share: float = 0.0
    servers_cpu_cores: float = 0.0
    peak_rss_mb: float = 0.0
    end_rss_mb: float = 0.0
    threads_max: int = 0
    lag_p50_s: float | None = None
    lag_p99_s: float | None = None
    lag_count: int = 0
    lag_over_1s: int = 0
    success_series: int = 0
    success_ok: int = 0
    healthz_polls: int = 0
    healthz_max_ms: float = 0.0
    healthz_p99_ms: float | None = None
    healthz_p50_ms: float | None = None
    round1_probes_per_s: float = 0.0
    round1_cpu_ms_per_probe: float = 0.0
    later_probes_per_s: float | None = None
    later_cpu_ms_per_probe: float | None = None
    log_counts: dict[str, int] = field(default_factory=dict)
    healthz_over_100ms: int = 0
    healthz_not_200: int = 0
    healthz_worst_at_s: float | None = None
    metrics_scrapes: int = 0
    metrics_scrape_max_ms: float = 0.0
    status_acks_ms: list[float] = field(default_factory=list)
    status_deferred: int = 0
    status_failed: int = 0
    status_first_text: str = ""
    bot_log_tail: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def compression(self) -> float:
        return ROUND_SECONDS / self.interval

    @property
    def nominal_rate(self) -> float:
        return self.sites / self.interval


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.procs = pt.Procs()
        self.tmp = Path(tempfile.mkdtemp(prefix="certops-scale-"))
        self.servers: subprocess.Popen[str] | None = None
        self.ports: list[int] = []
        self.ca_file = ""
        self.api_url: str | None = None
        self.response_url = ""

    def close(self) -> None:
        self.procs.stop_all()
        if self.args.keep:
            log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, what: list[str], **kw: Any) -> subprocess.Popen[Any]:
        return self.procs.start(what, preexec_fn=_die_with_parent, **kw)

    # the endpoints ----------------------------------------------------------------------------

    def start_servers(self) -> None:
        p = self.start(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--serve-endpoints",
                str(self.tmp),
                "--endpoints",
                str(self.args.endpoints),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(self.tmp / "servers.log").open("ab"),
            text=True,
            cwd=str(REPO_ROOT),
        )
        self.servers = p
        line = _readline(p, 60.0)
        if not line:
            tail = (self.tmp / "servers.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the TLS endpoints did not start:\n{tail}")
        hello = json.loads(line)
        self.ports, self.ca_file = hello["ports"], hello["ca_file"]
        self.api_url = hello["api_url"] if not self.args.no_slack else None
        self.response_url = hello["response_url"]
        log(f"{len(self.ports)} loopback TLS endpoints up (pid {p.pid}); Slack stand-in at {hello['api_url']}")

    # the bare engine --------------------------------------------------------------------------

    def engine_baseline(self) -> pt.RunResult:
        rounds = max(1, math.ceil(self.args.engine_probes / len(self.ports)))
        spec = pt.Spec(
            kind="certops",
            ports=self.ports,
            rounds=rounds,
            concurrency=self.args.concurrency,
            ca_file=self.ca_file,
            warmup=self.args.concurrency,
        )
        log(
            f"bare engine: {len(self.ports)} endpoints x {rounds} = {len(self.ports) * rounds} probes, "
            f"c={spec.concurrency}"
        )
        r = pt.run_worker(self.procs, spec, self.tmp, timeout=60.0 + len(self.ports) * rounds * 0.05)
        if r.error:
            log(f"bare engine: ERROR {r.error}")
        else:
            log(
                f"bare engine: {r.probes_per_s:.0f} probes/s, {r.cpu_ms_per_probe:.3f} CPU ms/probe, "
                f"{r.peak_rss_kib / 1024:.0f} MiB, failures {r.failures} {r.first_failure[:200]}"
            )
        return r

    # one bot run ------------------------------------------------------------------------------

    def run_phase(self, interval: float) -> Phase:
        a = self.args
        duration = a.duration or (2 * interval + jitter_of(interval) + 15.0)
        ph = Phase(a.sites, interval, duration, a.concurrency)
        workdir = self.tmp / f"bot-{interval:g}s"
        workdir.mkdir()
        db = workdir / "bench.db"
        port = pt.free_ports(1)[0]
        cfg = workdir / "certops.toml"
        cfg.write_text(
            bot_config(
                sites=a.sites,
                ports=self.ports,
                interval=interval,
                ca_file=self.ca_file,
                listen_port=port,
                database=str(db),
                concurrency=a.concurrency,
                api_url=self.api_url,
            )
        )
        bot_log = workdir / "certops.log"
        env = {
            **os.environ,
            BOT_TOKEN_ENV: _slack_bot_token(),
            SIGNING_SECRET_ENV: SIGNING_SECRET,
            "PYTHONUNBUFFERED": "1",
        }
        log(
            f"certops run: {a.sites} sites every {interval:g} s ({ROUND_SECONDS / interval:g}x a 5-minute round, "
            f"{a.sites / interval:.0f} probes/s nominal), c={a.concurrency}, for {duration:.0f} s after start"
        )
        started = time.monotonic()
        bot = self.start(
            [str(CERTOPS_BIN), "run", "-c", str(cfg)],
            stdin=subprocess.DEVNULL,
            stdout=bot_log.open("ab"),
            stderr=subprocess.STDOUT,
            cwd=str(workdir),
            env=env,
        )
        samples_file = workdir / "healthz.json"
        poller = self.start(
            [sys.executable, str(Path(__file__).resolve()), "--poll-healthz", str(port), "--out", str(samples_file)],
            stdin=subprocess.DEVNULL,
            cwd=str(REPO_ROOT),
        )
        try:
            self._measure(ph, bot, port, db, started)
        finally:
            self._stop(bot, 45.0)
            self._stop(poller, 10.0)
            text = bot_log.read_text(errors="replace") if bot_log.exists() else ""
            ph.bot_log_tail = text[-3000:]
            ph.log_counts = log_counts(text)
        self._healthz(ph, samples_file)
        return ph

    def _stop(self, p: subprocess.Popen[Any], timeout: float) -> None:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"pid {p.pid} did not stop within {timeout:.0f} s of SIGTERM: killed")
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                p.wait(timeout=10)
        with contextlib.suppress(ValueError):
            self.procs.procs.remove(p)

    def _measure(self, ph: Phase, bot: subprocess.Popen[Any], port: int, db: Path, started: float) -> None:
        a = self.args
        # 1. wait for /healthz 200: the scheduler is running
        startup_deadline = started + 60.0 + a.sites / 100.0
        broken_since: float | None = None
        while True:
            if bot.poll() is not None:
                ph.error = f"certops run exited with {bot.returncode} before /healthz answered 200"
                return
            status = 0
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, body, _ = http_get(port, "/healthz", 2.0)
            if status == 200:
                break
            if status >= 500 and status != 503:
                # /healthz itself raises (the code base mid-change): the web server and so the
                # scheduler are up; measure anyway and say so
                broken_since = broken_since or time.monotonic()
                if time.monotonic() - broken_since > 3.0:
                    ph.notes.append(
                        f"/healthz answers HTTP {status} (broken handler, see the certops log); timed anyway"
                    )
                    break
            if time.monotonic() > startup_deadline:
                ph.error = f"/healthz did not answer 200 within {startup_deadline - started:.0f} s (last HTTP {status})"
                return
            time.sleep(0.1)
        t0, wall0 = time.monotonic(), time.time()
        s0 = proc_sample(bot.pid)
        srv0 = proc_sample(self.servers.pid) if self.servers else None
        host0 = _host_ticks()
        ph.startup_s = t0 - started
        ph.startup_cpu_s = s0.cpu_s if s0 else 0.0
        log(
            f"scheduler running after {ph.startup_s:.1f} s ({ph.startup_cpu_s:.1f} s CPU); "
            f"measuring {ph.duration:.0f} s"
        )

        seen: dict[str, list[float]] = {}
        statuses: dict[str, int] = {}
        last_proc = s0
        cpu_line: list[tuple[float, float]] = [(wall0, s0.cpu_s)] if s0 else []
        hwm = s0.hwm_kib if s0 else 0
        threads = s0.threads if s0 else 0
        slash = SlashCommands(port, self.response_url) if self.api_url else None
        next_db = t0 + DB_EVERY
        next_scrape = t0 + a.scrape_every if a.scrape_every > 0 else math.inf
        next_status = 0.0
        next_report = t0 + 15.0
        end = t0 + ph.duration
        while time.monotonic() < end:
            if bot.poll() is not None:
                ph.error = f"certops run exited with {bot.returncode} during the run"
                break
            now = time.monotonic()
            s = proc_sample(bot.pid)
            if s:
                last_proc, hwm, threads = s, max(hwm, s.hwm_kib), max(threads, s.threads)
                cpu_line.append((time.time(), s.cpu_s))
            if now >= next_db:
                self._read_db(db, seen, statuses)
                next_db = now + DB_EVERY
            if now >= next_scrape:
                with contextlib.suppress(OSError, http.client.HTTPException):
                    _st, _body, took = http_get(port, "/metrics", 30.0)
                    ph.metrics_scrapes += 1
                    ph.metrics_scrape_max_ms = max(ph.metrics_scrape_max_ms, took * 1000)
                next_scrape = time.monotonic() + a.scrape_every
            if slash and len(seen) >= ph.sites and now >= next_status:
                code, took, text = slash.send("status")
                if code != 200:
                    ph.status_failed += 1
                    log(f"/ssl status: HTTP {code} after {took * 1000:.0f} ms {text[:200]}")
                else:
                    ph.status_acks_ms.append(took * 1000)
                    ph.status_first_text = ph.status_first_text or text[:160]
                    if text.startswith("Working on"):
                        ph.status_deferred += 1  # the core took over ACK_BUDGET (2 s): acked, answered later
                next_status = time.monotonic() + a.status_every
            if now >= next_report:
                n = sum(len(v) for v in seen.values())
                rss = last_proc.rss_kib / 1024 if last_proc else 0
                log(f"  t+{now - t0:4.0f} s: {n} probes seen, {len(seen)}/{ph.sites} sites, RSS {rss:.0f} MiB")
                next_report = now + 15.0
            time.sleep(max(0.0, min(PROC_EVERY, end - time.monotonic())))
        t_end, wall_end = time.monotonic(), time.time()
        s_end = proc_sample(bot.pid) or last_proc
        srv_end = proc_sample(self.servers.pid) if self.servers else None
        host_end = _host_ticks()
        self._read_db(db, seen, statuses)
        with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
            st, body, _took = http_get(port, "/metrics", 30.0)
            if st == 200:
                m = parse_metrics(body.decode())
                ph.lag_p50_s = histogram_quantile(0.5, m["lag_buckets"])
                ph.lag_p99_s = histogram_quantile(0.99, m["lag_buckets"])
                ph.lag_count = int(m["lag_count"])
                le1 = next((n for le, n in m["lag_buckets"] if le == 1.0), None)
                ph.lag_over_1s = int(m["lag_count"] - le1) if le1 is not None else 0
                ph.success_series, ph.success_ok = m["success_series"], int(m["success_ok"])
        # figures from the samples
        ph.window_s = t_end - t0
        if s0 and s_end:
            ph.cpu_s = s_end.cpu_s - s0.cpu_s
            ph.cpu_cores_busy = ph.cpu_s / ph.window_s if ph.window_s else 0.0
        if srv0 and srv_end:
            ph.servers_cpu_cores = (srv_end.cpu_s - srv0.cpu_s) / ph.window_s if ph.window_s else 0.0
        ph.host_busy_share = _busy_share(host0, host_end)
        ph.peak_rss_mb = max(hwm, s_end.hwm_kib if s_end else 0) / 1024
        ph.end_rss_mb = (s_end.rss_kib if s_end else 0) / 1024
        ph.threads_max = threads
        times = [t for v in seen.values() for t in v if wall0 - 1 <= t <= wall_end + 1]
        ph.probes = len(times)
        ph.probes_per_s = ph.probes / ph.window_s if ph.window_s else 0.0
        ph.probes_per_s_busiest_10s = _busiest(times, 10.0) / 10.0
        ph.sites_probed = len(seen)
        ph.not_ok_results = sum(1 for v in statuses.values() if v)
        ph.cpu_ms_per_probe = 1000 * ph.cpu_s / ph.probes if ph.probes else 0.0
        if len(seen) >= ph.sites:
            ph.round1_s = max(v[0] for v in seen.values()) - wall0
        # round 1 (every site's first probe) against what follows: does the cost grow with state?
        r1_end = wall0 + ph.round1_s if ph.round1_s is not None else wall_end
        r1_probes = sum(1 for t in times if t <= r1_end)
        later = ph.probes - r1_probes
        cpu_r1 = _cpu_at(cpu_line, r1_end) - (s0.cpu_s if s0 else 0.0)
        ph.round1_probes_per_s = r1_probes / (r1_end - wall0) if r1_end > wall0 else 0.0
        ph.round1_cpu_ms_per_probe = 1000 * cpu_r1 / r1_probes if r1_probes else 0.0
        if later > 0 and wall_end - r1_end > 5:
            ph.later_probes_per_s = later / (wall_end - r1_end)
            ph.later_cpu_ms_per_probe = 1000 * (ph.cpu_s - cpu_r1) / later
        gaps = [b - a_ for v in seen.values() for a_, b in itertools.pairwise(v)]
        ph.gaps = len(gaps)
        ph.gap_p50_s = statistics.median(gaps) if gaps else None
        ph.gap_max_s = max(gaps) if gaps else None
        # probed once, and not again although the interval (plus the scheduler's jitter) has passed
        grace = ph.interval + jitter_of(ph.interval) + DB_EVERY + 2.0
        ph.overdue_at_end = sum(1 for v in seen.values() if wall_end - v[-1] > grace)
        ph.overdue_at_end += max(0, ph.sites - len(seen)) if ph.window_s > spread_of(ph.interval) + grace else 0

    def _read_db(self, db: Path, seen: dict[str, list[float]], statuses: dict[str, int]) -> None:
        if not db.exists():
            return
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2.0)
            try:
                rows = con.execute("SELECT site, checked_at, status FROM probe_results").fetchall()
            finally:
                con.close()
        except sqlite3.Error as exc:
            log(f"reading the bot's database: {exc}")
            return
        for site, checked_at, status in rows:
            try:
                t = epoch_of(checked_at)
            except ValueError:
                continue
            v = seen.setdefault(site, [])
            if not v or v[-1] != t:
                v.append(t)
            statuses[site] = 0 if status == "ok" else 1

    def _healthz(self, ph: Phase, samples_file: Path) -> None:
        try:
            samples = json.loads(samples_file.read_text())
        except (OSError, ValueError):
            ph.error = ph.error or "the /healthz poller left no samples"
            return
        # from the scheduler's start (the first 200) to the end of the window
        first_ok = next((i for i, (_t, _d, st) in enumerate(samples) if st == 200), None)
        if first_ok is None and ph.notes:  # /healthz broken: from its first answer of any kind
            first_ok = next((i for i, (_t, _d, st) in enumerate(samples) if st), None)
        if first_ok is None:
            return
        base = samples[first_ok][0]
        live = [s for s in samples[first_ok:] if s[0] <= base + ph.window_s]
        durations = [d for _t, d, _st in live]
        ph.healthz_polls = len(live)
        if durations:
            worst = max(live, key=lambda s: s[1])
            ph.healthz_max_ms = worst[1] * 1000
            ph.healthz_worst_at_s = worst[0] - base
            ph.healthz_p99_ms = (pct(durations, 99) or 0) * 1000
            ph.healthz_p50_ms = (pct(durations, 50) or 0) * 1000
        ph.healthz_over_100ms = sum(1 for d in durations if d * 1000 > TARGET_STALL_MS)
        ph.healthz_not_200 = sum(1 for _t, _d, st in live if st != 200)


def _slack_bot_token() -> str:
    from tests.fakes.slack_api import BOT_TOKEN

    return BOT_TOKEN


def _readline(p: subprocess.Popen[str], timeout: float) -> str:
    out: list[str] = []
    t = threading.Thread(target=lambda: out.append(p.stdout.readline() if p.stdout else ""), daemon=True)
    t.start()
    t.join(timeout)
    return out[0] if out else ""


def _host_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        vals = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = vals[3] + vals[4]
        total = sum(vals[:8])
        return total - idle, total
    return 0, 0


def _busy_share(a: tuple[int, int], b: tuple[int, int]) -> float:
    return (b[0] - a[0]) / (b[1] - a[1]) if b[1] > a[1] else 0.0


def _cpu_at(line: Sequence[tuple[float, float]], when: float) -> float:
    """CPU seconds at wall time `when`, from the samples (the last one at or before it)."""
    best = line[0][1] if line else 0.0
    for t, cpu in line:
        if t > when:
            break
        best = cpu
    return best


LOG_PATTERNS = {
    "skipped (max instances)": "maximum number of running instances reached",
    "missed": "was missed by",
    "ERROR lines": " ERROR ",
    "WARNING lines": " WARNING ",
    "healthz tracebacks": "in healthz",
}


def log_counts(text: str) -> dict[str, int]:
    return {name: text.count(needle) for name, needle in LOG_PATTERNS.items()}


def _busiest(times: Sequence[float], width: float) -> int:
    s = sorted(times)
    best = j = 0
    for i, t in enumerate(s):
        while s[j] < t - width:
            j += 1
        best = max(best, i - j + 1)
    return best


# --------------------------------------------------------------------------- the table


def _f(x: float | None, fmt: str, unit: str = "") -> str:
    return "-" if x is None else f"{format(x, fmt)}{unit}"


def render(phases: Sequence[Phase], engine: pt.RunResult | None, meta: dict[str, Any]) -> str:
    eng = engine.cpu_ms_per_probe if engine and not engine.error and engine.probes else None
    rows: list[tuple[str, list[str], str]] = []

    def row(label: str, values: list[str], target: str = "") -> None:
        rows.append((label, values, target))

    def verdict(ok: bool | None) -> str:
        return "" if ok is None else (" ok" if ok else " MISS")

    row("sites", [f"{p.sites:,}" for p in phases])
    row("interval (x of a 5-min round)", [f"{p.interval:g} s ({p.compression:g}x)" for p in phases])
    row("startup to scheduler running", [f"{p.startup_s:.1f} s, {p.startup_cpu_s:.1f} CPU s" for p in phases])
    row("probes/s achieved (nominal)", [f"{p.probes_per_s:.1f} ({p.nominal_rate:.0f})" for p in phases], "= nominal")
    row("  busiest 10 s", [f"{p.probes_per_s_busiest_10s:.0f}/s" for p in phases])
    row(
        "  in round 1 / after it",
        [f"{p.round1_probes_per_s:.0f} / {_f(p.later_probes_per_s, '.0f')} per s" for p in phases],
    )
    row("probes seen in window", [f"{p.probes:,} in {p.window_s:.0f} s" for p in phases])
    row(
        "round 1: every site probed once",
        [
            (_f(p.round1_s, ".1f", " s") + verdict(p.round1_s <= p.interval + 5 if p.round1_s is not None else False))
            if p.sites_probed >= p.sites
            else f"NOT DONE ({p.sites_probed:,}/{p.sites:,})"
            for p in phases
        ],
        "inside interval",
    )
    row(
        "re-probe gap p50 / max",
        [
            f"{_f(p.gap_p50_s, '.1f')} / {_f(p.gap_max_s, '.1f')} s"
            + verdict(p.gap_max_s <= p.interval + jitter_of(p.interval) + 3 if p.gap_max_s is not None else None)
            for p in phases
        ],
        "<= interval + jitter",
    )
    row("sites overdue at the end", [f"{p.overdue_at_end:,}" + verdict(p.overdue_at_end == 0) for p in phases], "0")
    row("sites not ok (last result)", [f"{p.not_ok_results:,}" for p in phases], "0")
    row("CPU ms per probe (certops run)", [f"{p.cpu_ms_per_probe:.2f}" for p in phases])
    row(
        "  in round 1 / after it",
        [f"{p.round1_cpu_ms_per_probe:.2f} / {_f(p.later_cpu_ms_per_probe, '.2f')}" for p in phases],
    )
    row("CPU ms per probe (bare engine)", [_f(eng, ".2f") for _ in phases])
    row(
        "  ratio run / engine",
        [_f(p.cpu_ms_per_probe / eng if eng and p.cpu_ms_per_probe else None, ".2f", "x") for p in phases],
    )
    row("bot CPU (cores busy)", [f"{p.cpu_cores_busy:.2f}" for p in phases], f"of {meta['cpus']}")
    row(
        "  host busy / TLS servers / others",
        [
            f"{100 * p.host_busy_share:.0f}% / {p.servers_cpu_cores:.2f} / "
            f"{max(0.0, p.host_busy_share * meta['cpus'] - p.cpu_cores_busy - p.servers_cpu_cores):.2f} cores"
            for p in phases
        ],
        "others ~0: a quiet host",
    )
    row(
        "peak RSS (VmHWM)",
        [f"{p.peak_rss_mb:.0f} MB" + verdict(p.peak_rss_mb < TARGET_RSS_MB) for p in phases],
        f"< {TARGET_RSS_MB:g} MB",
    )
    row("  RSS at end / threads max", [f"{p.end_rss_mb:.0f} MB / {p.threads_max}" for p in phases])
    row(
        "scheduler lag p50 / p99",
        [
            f"{_f(p.lag_p50_s, '.3f')} / {_f(p.lag_p99_s, '.3f')} s"
            + verdict(p.lag_p99_s < TARGET_LAG_P99 if p.lag_p99_s is not None else None)
            for p in phases
        ],
        f"p99 < {TARGET_LAG_P99:g} s",
    )
    row("  lag count / over 1 s", [f"{p.lag_count:,} / {p.lag_over_1s:,}" for p in phases])
    row("certops_probe_success series (=1)", [f"{p.success_series:,} ({p.success_ok:,})" for p in phases], "= sites")
    row(
        "longest /healthz answer",
        [
            f"{p.healthz_max_ms:.0f} ms"
            + (f" at t+{p.healthz_worst_at_s:.0f}s" if p.healthz_worst_at_s is not None else "")
            + verdict(p.healthz_max_ms <= TARGET_STALL_MS if p.healthz_polls else None)
            for p in phases
        ],
        f"<= {TARGET_STALL_MS:g} ms",
    )
    row(
        "  polls / >100 ms / not 200 / p50 / p99",
        [
            f"{p.healthz_polls} / {p.healthz_over_100ms} / {p.healthz_not_200} / "
            f"{_f(p.healthz_p50_ms, '.0f')} / {_f(p.healthz_p99_ms, '.0f')} ms"
            for p in phases
        ],
    )
    row("/metrics scrape max (count)", [f"{p.metrics_scrape_max_ms:.0f} ms ({p.metrics_scrapes})" for p in phases])
    row(
        "/ssl status ack p50 / max",
        [
            (
                f"{_f(pct(p.status_acks_ms, 50), '.0f')} / {_f(max(p.status_acks_ms), '.0f')} ms "
                f"(n={len(p.status_acks_ms)})" + verdict(max(p.status_acks_ms) < TARGET_ACK_MS)
            )
            if p.status_acks_ms
            else ("no Slack" if meta.get("no_slack") else "not sent")
            for p in phases
        ],
        f"< {TARGET_ACK_MS:g} ms",
    )
    row("  deferred (>2 s) / failed", [f"{p.status_deferred} / {p.status_failed}" for p in phases])
    for name in LOG_PATTERNS:
        row(
            f"certops log: {name}",
            [str(p.log_counts.get(name, "-")) for p in phases],
            "0" if "healthz" not in name else "",
        )
    w0 = max(len(r[0]) for r in rows)
    widths = [max(len(r[1][i]) for r in rows) for i in range(len(phases))]
    lines = [
        f"certops scale: {meta['endpoints']} loopback TLS endpoints, probe_concurrency {meta['concurrency']}, "
        f"{meta['cpus']} CPUs, Python {meta['python']}, {meta['openssl']}",
    ]
    if engine and not engine.error:
        lines.append(
            f"bare engine (bench/probe_throughput.py certops worker, same endpoints): {engine.probes} probes, "
            f"{engine.probes_per_s:.0f} probes/s, {engine.cpu_ms_per_probe:.3f} CPU ms/probe, "
            f"failures {engine.failures}"
        )
    elif engine:
        lines.append(f"bare engine: ERROR {engine.error}")
    lines.append("")
    header = (
        f"{'':<{w0}} | " + " | ".join(f"{'run ' + str(i + 1):<{widths[i]}}" for i in range(len(phases))) + " | target"
    )
    lines += [header, "-" * len(header)]
    for label, values, target in rows:
        lines.append(
            f"{label:<{w0}} | " + " | ".join(f"{v:<{widths[i]}}" for i, v in enumerate(values)) + f" | {target}"
        )
    for i, p in enumerate(phases):
        if p.error:
            lines.append(f"run {i + 1} ERROR: {p.error}")
            if p.bot_log_tail.strip():
                lines.append("  certops log tail:\n    " + "\n    ".join(p.bot_log_tail.strip().splitlines()[-15:]))
        elif p.status_first_text:
            lines.append(f"run {i + 1} /ssl status answered: {p.status_first_text!r}")
        for note in p.notes:
            lines.append(f"run {i + 1} NOTE: {note}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--sites", type=int, default=10_000, help="[[sites]] entries (default 10,000)")
    ap.add_argument(
        "--interval",
        default="60s,30s",
        help="comma-separated site intervals, one certops run each (default 60s,30s: 5x and 10x a 5-minute round)",
    )
    ap.add_argument(
        "--duration", type=float, default=0.0, help="seconds to measure each run (default 2 intervals + jitter + 15 s)"
    )
    ap.add_argument(
        "--endpoints", type=int, default=200, help="loopback TLS server ports the sites share (default 200)"
    )
    ap.add_argument("--concurrency", type=int, default=50, help="[bot] probe_concurrency (default 50)")
    ap.add_argument("--engine-probes", type=int, default=2000, help="probes of the bare-engine baseline (default 2000)")
    ap.add_argument("--no-engine", action="store_true", help="skip the bare-engine baseline")
    ap.add_argument("--no-slack", action="store_true", help="no [chat.slack]: no /ssl status ack measured")
    ap.add_argument(
        "--scrape-every",
        type=float,
        default=15.0,
        help="scrape /metrics this often, as Prometheus (0: at the end only)",
    )
    ap.add_argument(
        "--status-every", type=float, default=30.0, help="send /ssl status this often once every site is probed"
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: 1,000 sites at 30 s and 10 s")
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (configs, databases, certops logs)")
    ap.add_argument("--serve-endpoints", metavar="DIR", help=argparse.SUPPRESS)
    ap.add_argument("--poll-healthz", type=int, metavar="PORT", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.sites = 1000
        if args.interval == ap.get_default("interval"):
            args.interval = "30s,10s"
        args.engine_probes = min(args.engine_probes, 1000)
    args.intervals = [parse_seconds(x) for x in args.interval.split(",") if x.strip()]
    if any(i < 5 for i in args.intervals):
        ap.error("the config's minimum interval is 5s")
    if min(args.sites, args.endpoints, args.concurrency) < 1:
        ap.error("--sites, --endpoints and --concurrency must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_endpoints:
        return serve_endpoints_main(args.serve_endpoints, args.endpoints)
    if args.poll_healthz:
        return poll_healthz_main(args.poll_healthz, args.out)
    if not CERTOPS_BIN.exists():
        log(f"{CERTOPS_BIN} is missing: pip install -e . in the venv first")
        return 2
    import ssl

    pt.raise_nofile()
    bench = Bench(args)
    phases: list[Phase] = []
    engine: pt.RunResult | None = None
    try:
        with pt._signals_as_interrupt():
            bench.start_servers()
            if not args.no_engine:
                engine = bench.engine_baseline()
            for interval in args.intervals:
                ph = bench.run_phase(interval)
                phases.append(ph)
                if ph.error:
                    log(f"run at {interval:g} s: ERROR {ph.error}")
    except KeyboardInterrupt:
        log("interrupted; children stopped and temp dir removed")
        return 130
    finally:
        bench.close()
    meta = {
        "endpoints": args.endpoints,
        "concurrency": args.concurrency,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "openssl": ssl.OPENSSL_VERSION,
        "no_slack": args.no_slack,
    }
    if args.json:
        print(
            json.dumps(
                {
                    "meta": meta,
                    "engine": (
                        {
                            **asdict(engine),
                            "cpu_ms_per_probe": engine.cpu_ms_per_probe,
                            "probes_per_s": engine.probes_per_s,
                        }
                        if engine
                        else None
                    ),
                    "runs": [
                        {**asdict(p), "compression": p.compression, "nominal_rate": p.nominal_rate} for p in phases
                    ],
                },
                indent=2,
            )
        )
    else:
        print(render(phases, engine, meta))
    broken = any(p.error for p in phases) or (engine is not None and bool(engine.error or engine.failures))
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
