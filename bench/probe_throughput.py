"""Probe throughput benchmark: certops's probe engine vs. blackbox_exporter vs. a bare ssl floor.

Run from the repository root:

    .venv/bin/python bench/probe_throughput.py            # defaults: 500 endpoints x 6 rounds, c=50
    .venv/bin/python bench/probe_throughput.py --quick    # a smoke run in a few seconds
    .venv/bin/python bench/probe_throughput.py --json     # machine-readable

What it does (issue 2, "Benchmark"):

* starts one nginx (1 worker) listening on N loopback ports with TLS 1.2/1.3, an ECDSA P-256 leaf
  for ``bench.test`` from a private CA, session tickets and cache off (every probe is a full
  handshake), answering ``return 200``;
* starts Debian's ``prometheus-blackbox-exporter`` with an http module (HEAD, ca_file,
  server_name bench.test) and drives its ``/probe`` endpoint from a lean asyncio client;
* probes every endpoint R times, at the same concurrency, with three probers, each in its own
  child process so CPU and peak memory are its own:
    - ``certops``: ``bot.probe.engine.probe_many``;
    - ``blackbox``: the exporter's CPU (``/proc/<pid>/stat`` utime+stime) and peak RSS (VmHWM,
      reset before each run); the driving client's CPU is reported separately, not charged;
    - ``floor``: one shared ``SSLContext``, ``asyncio.open_connection`` + ``HEAD /`` + status line;
* repeats in alternating order and reports medians (the machine is shared and noisy).

nginx and the exporter are installed with apt-get when their binaries are missing. Everything
binds 127.0.0.1. Child processes and the temp dir are removed on exit, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
HOSTNAME = "bench.test"
NGINX_BIN = "/usr/sbin/nginx"
BLACKBOX_BIN = "/usr/bin/prometheus-blackbox-exporter"
APT_PACKAGES = ("nginx", "prometheus-blackbox-exporter")
BLACKBOX_MODULE = "bench_https"
PROBERS = ("certops", "blackbox", "floor")
ROUND_SECONDS = 300  # one scheduling round: 5 minutes
CORES = 2  # the machine the target is stated for
TARGET_SITES = 10_000
TARGET_CPU_RATIO = 1.5  # certops CPU per probe vs. blackbox_exporter's


# --------------------------------------------------------------------------- pure helpers


@dataclass(frozen=True)
class Spec:
    """What one worker child is asked to run (written as JSON to the temp dir)."""

    kind: str
    ports: list[int]
    rounds: int
    concurrency: int
    ca_file: str
    warmup: int
    blackbox_port: int = 0
    blackbox_pid: int = 0
    timeout: float = 10.0


@dataclass
class RunResult:
    """One prober's measurement in one repetition."""

    kind: str
    probes: int
    failures: int
    wall_s: float
    cpu_s: float  # the prober's own CPU (for blackbox: the exporter process)
    peak_rss_kib: int
    client_cpu_s: float = 0.0  # blackbox only: the driving client, not charged to the exporter
    first_failure: str = ""
    error: str = ""

    @property
    def probes_per_s(self) -> float:
        return self.probes / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def cpu_ms_per_probe(self) -> float:
        return 1000.0 * self.cpu_s / self.probes if self.probes else 0.0


@dataclass
class Summary:
    """Medians over the repetitions for one prober."""

    kind: str
    runs: int
    probes: int
    failures: int
    probes_per_s: float
    cpu_ms_per_probe: float
    peak_rss_mib: float
    client_cpu_ms_per_probe: float = 0.0
    errors: list[str] = field(default_factory=list)
    first_failure: str = ""


def probe_order(ports: Sequence[int], rounds: int) -> list[int]:
    """Round-major order, as a scheduler would go: every endpoint once, then again."""
    return [p for _ in range(rounds) for p in ports]


def rep_order(rep: int, probers: Sequence[str] = PROBERS) -> list[str]:
    """Alternate the probers' order between repetitions so drift hits each alike."""
    return list(probers) if rep % 2 == 0 else list(reversed(probers))


def nginx_conf(tmp: Path, ports: Sequence[int], cert: Path, key: Path, concurrency: int) -> str:
    """nginx.conf: 1 worker, no daemon, everything in `tmp`, full handshake every time."""
    conns = len(ports) + 4 * concurrency + 256  # listening sockets take connections too
    listens = "\n".join(f"        listen 127.0.0.1:{p} ssl;" for p in ports)
    temp_paths = "\n".join(
        f"    {name}_temp_path {tmp / ('nginx_' + name)};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""\
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile {2 * conns};
pid {tmp / "nginx.pid"};
error_log {tmp / "nginx-error.log"} warn;

events {{
    worker_connections {conns};
}}

http {{
    access_log off;
{temp_paths}
    keepalive_timeout 0;
    server {{
{listens}
        server_name {HOSTNAME};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_tickets off;
        ssl_session_cache off;
        location / {{
            return 200 "ok\\n";
        }}
    }}
}}
"""


def blackbox_config(ca_file: Path, timeout_s: float = 10.0) -> str:
    """blackbox_exporter config.yml: one http module, HEAD, our CA, SNI bench.test."""
    return f"""\
modules:
  {BLACKBOX_MODULE}:
    prober: http
    timeout: {timeout_s:g}s
    http:
      method: HEAD
      valid_status_codes: [200]
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
      fail_if_not_ssl: true
      headers:
        Host: {HOSTNAME}
      tls_config:
        ca_file: {ca_file}
        server_name: {HOSTNAME}
"""


def summarize(kind: str, runs: Sequence[RunResult]) -> Summary:
    ok = [r for r in runs if not r.error]
    errors = [r.error for r in runs if r.error]
    if not ok:
        return Summary(kind, 0, 0, 0, 0.0, 0.0, 0.0, errors=errors)
    return Summary(
        kind=kind,
        runs=len(ok),
        probes=ok[0].probes,
        failures=max(r.failures for r in ok),
        probes_per_s=statistics.median(r.probes_per_s for r in ok),
        cpu_ms_per_probe=statistics.median(r.cpu_ms_per_probe for r in ok),
        peak_rss_mib=statistics.median(r.peak_rss_kib for r in ok) / 1024.0,
        client_cpu_ms_per_probe=statistics.median(1000.0 * r.client_cpu_s / r.probes if r.probes else 0.0 for r in ok),
        errors=errors,
        first_failure=next((r.first_failure for r in ok if r.first_failure), ""),
    )


def ratio(a: float, b: float) -> float | None:
    return a / b if a > 0 and b > 0 else None


def ratios(summaries: dict[str, Summary]) -> dict[str, float | None]:
    c, b, f = (summaries.get(k) for k in PROBERS)
    out: dict[str, float | None] = {}
    for other, s in (("blackbox", b), ("floor", f)):
        usable = c is not None and s is not None and c.runs > 0 and s.runs > 0
        out[f"cpu_per_probe_certops_over_{other}"] = (
            ratio(c.cpu_ms_per_probe, s.cpu_ms_per_probe) if usable and c and s else None
        )
        out[f"throughput_certops_over_{other}"] = ratio(c.probes_per_s, s.probes_per_s) if usable and c and s else None
    return out


def sites_per_round(cpu_ms_per_probe: float, cores: int = CORES) -> int:
    """Probes one 5-minute round can afford at this CPU cost with every core busy."""
    if cpu_ms_per_probe <= 0:
        return 0
    return int(ROUND_SECONDS * cores * 1000.0 / cpu_ms_per_probe)


def _fmt_ratio(x: float | None) -> str:
    return f"{x:.2f}x" if x is not None else "n/a"


def render(summaries: dict[str, Summary], meta: dict[str, Any]) -> str:
    lines = [
        f"probe throughput: {meta['endpoints']} endpoints x {meta['rounds']} rounds = "
        f"{meta['probes']} probes, concurrency {meta['concurrency']}, "
        f"medians of {meta['repeat']} runs (alternating order); {meta['cpus']} CPUs, "
        f"{100 * meta.get('cpu_steal_share', 0):.0f}% of CPU time stolen by the host meanwhile",
        f"nginx {meta.get('nginx_version', '?')}, blackbox_exporter "
        f"{meta.get('blackbox_version', '?')}, Python {meta['python']}, {meta['openssl']}",
        "",
        f"{'prober':<10} | {'probes/s':>9} | {'CPU ms/probe':>12} | {'peak RSS MiB':>12} | {'failures':>8}",
        f"{'-' * 10}-+-{'-' * 9}-+-{'-' * 12}-+-{'-' * 12}-+-{'-' * 8}",
    ]
    for kind in PROBERS:
        s = summaries.get(kind)
        if s is None or s.runs == 0:
            why = "; ".join(dict.fromkeys(s.errors)) if s else "not run"
            lines.append(f"{kind:<10} | {'-':>9} | {'-':>12} | {'-':>12} | {'-':>8}  ({why})")
            continue
        lines.append(
            f"{kind:<10} | {s.probes_per_s:>9.0f} | {s.cpu_ms_per_probe:>12.3f} | "
            f"{s.peak_rss_mib:>12.1f} | {s.failures:>8}"
        )
    bb = summaries.get("blackbox")
    if bb and bb.runs:
        lines.append(f"(blackbox's driving client, not charged above: {bb.client_cpu_ms_per_probe:.3f} CPU ms/probe)")
    r = ratios(summaries)
    lines += [
        "",
        "certops/blackbox: CPU per probe "
        f"{_fmt_ratio(r['cpu_per_probe_certops_over_blackbox'])} "
        f"(target <= {TARGET_CPU_RATIO:g}x, aim 1.0x), throughput "
        f"{_fmt_ratio(r['throughput_certops_over_blackbox'])}",
        "certops/floor:    CPU per probe "
        f"{_fmt_ratio(r['cpu_per_probe_certops_over_floor'])}, throughput "
        f"{_fmt_ratio(r['throughput_certops_over_floor'])}",
        "",
        f"probes per {ROUND_SECONDS // 60}-minute round at this CPU cost on {CORES} cores "
        f"(target {TARGET_SITES:,} sites):",
    ]
    for kind in PROBERS:
        s = summaries.get(kind)
        if s and s.runs:
            n = sites_per_round(s.cpu_ms_per_probe)
            wall = int(s.probes_per_s * ROUND_SECONDS)
            verdict = "meets" if n >= TARGET_SITES else "MISSES"
            lines.append(
                f"  {kind:<8} {n:>9,} CPU-bound ({verdict} target); {wall:>9,} at the measured "
                f"probes/s (c={meta['concurrency']}, loopback)"
            )
    for kind in PROBERS:
        s = summaries.get(kind)
        if s and s.failures:
            lines.append(f"WARNING: {kind} had {s.failures} failed probes: {s.first_failure}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- worker (child)


def _rusage_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _proc_cpu_s(pid: int) -> float:
    """utime+stime of another process (all its threads), from /proc/<pid>/stat."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _proc_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _reset_hwm(pid: int) -> None:
    """Reset the peak RSS of `pid` (Linux: write 5 to clear_refs); best effort."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


async def _bounded(n: int, concurrency: int, probe: Any) -> tuple[int, str]:
    """Run probe(i) for i in range(n) with `concurrency` workers; count failures."""
    next_i = 0
    failures = 0
    first = ""

    async def worker() -> None:
        nonlocal next_i, failures, first
        while next_i < n:
            i = next_i
            next_i += 1
            err = await probe(i)
            if err:
                failures += 1
                first = first or err

    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    return failures, first


async def _floor_probe(ctx: ssl.SSLContext, port: int, timeout: float) -> str:
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=HOSTNAME)
            try:
                writer.write(f"HEAD / HTTP/1.1\r\nHost: {HOSTNAME}\r\nConnection: close\r\n\r\n".encode())
                line = await reader.readline()
            finally:
                writer.transport.abort()  # no close_notify exchange: the least work, as a floor
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        return f"port {port}: {type(exc).__name__}: {exc}"
    if not line.startswith(b"HTTP/1.1 200"):
        return f"port {port}: status line {line!r}"
    return ""


async def _run_floor(spec: Spec) -> tuple[int, str, float, float]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=spec.ca_file)
    order = probe_order(spec.ports, spec.rounds)
    warm = order[: spec.warmup]
    await _bounded(len(warm), spec.concurrency, lambda i: _floor_probe(ctx, warm[i], spec.timeout))
    cpu0, t0 = _rusage_cpu(), time.perf_counter()
    failures, first = await _bounded(len(order), spec.concurrency, lambda i: _floor_probe(ctx, order[i], spec.timeout))
    return failures, first, time.perf_counter() - t0, _rusage_cpu() - cpu0


async def _run_certops(spec: Spec) -> tuple[int, str, float, float]:
    sys.path.insert(0, str(REPO_ROOT))
    from bot.probe.engine import probe_many
    from bot.probe.model import ProbeTarget

    def targets(ports: Sequence[int]) -> list[ProbeTarget]:
        return [
            ProbeTarget(
                url=f"https://{HOSTNAME}:{p}/",
                hostname=HOSTNAME,
                port=p,
                connect_host="127.0.0.1",
                connect_port=p,
                ca_file=spec.ca_file,
                timeout=spec.timeout,
            )
            for p in ports
        ]

    order = probe_order(spec.ports, spec.rounds)
    warm = targets(order[: spec.warmup])
    todo = targets(order)
    await probe_many(warm, concurrency=spec.concurrency)
    cpu0, t0 = _rusage_cpu(), time.perf_counter()
    results = await probe_many(todo, concurrency=spec.concurrency)
    wall, cpu = time.perf_counter() - t0, _rusage_cpu() - cpu0
    bad = [r for r in results if r.status.value != "ok"]
    failures = len(bad) + max(0, len(todo) - len(results))
    first = ""
    if bad:
        r = bad[0]
        first = f"{r.target.url}: {r.status.value}: " + "; ".join(f"{p.code}: {p.message}" for p in r.problems)
    elif len(results) != len(todo):
        first = f"probe_many returned {len(results)} results for {len(todo)} targets"
    return failures, first, wall, cpu


class _BlackboxConn:
    """One kept-alive HTTP/1.1 connection to the exporter: a lean client, so it stays cheap."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def probe(self, target_port: int, timeout: float) -> str:
        query = f"module={BLACKBOX_MODULE}&target=https://127.0.0.1:{target_port}/"
        req = (
            f"GET /probe?{query} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"X-Prometheus-Scrape-Timeout-Seconds: {timeout:g}\r\n\r\n"
        ).encode()
        try:
            async with asyncio.timeout(timeout + 5):
                if self.writer is None or self.reader is None:
                    self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
                self.writer.write(req)
                body = await _read_http_body(self.reader)
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
            self.close()
            return f"port {target_port}: exporter request failed: {type(exc).__name__}: {exc}"
        if b"\nprobe_success 1" not in b"\n" + body:
            detail = [ln for ln in body.decode(errors="replace").splitlines() if "probe_" in ln]
            return f"port {target_port}: probe_success != 1 ({'; '.join(detail[-4:])[:300]})"
        return ""

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _read_http_body(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    if not status_line.startswith("HTTP/1.1 200"):
        raise ValueError(f"status line {status_line!r}")
    headers = {}
    for h in header_lines:
        if ":" in h:
            k, v = h.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers from Go's server
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    raise ValueError("response without Content-Length or chunked body")


async def _run_blackbox(spec: Spec) -> tuple[int, str, float, float, float, int]:
    conns = [_BlackboxConn(spec.blackbox_port) for _ in range(spec.concurrency)]
    order = probe_order(spec.ports, spec.rounds)
    warm = order[: spec.warmup]

    def prober(seq: list[int]) -> Any:
        free = list(conns)

        async def probe(i: int) -> str:
            conn = free.pop()
            try:
                return await conn.probe(seq[i], spec.timeout)
            finally:
                free.append(conn)

        return probe

    await _bounded(len(warm), spec.concurrency, prober(warm))
    _reset_hwm(spec.blackbox_pid)
    bb0, cpu0, t0 = _proc_cpu_s(spec.blackbox_pid), _rusage_cpu(), time.perf_counter()
    failures, first = await _bounded(len(order), spec.concurrency, prober(order))
    wall = time.perf_counter() - t0
    bb_cpu, client_cpu = _proc_cpu_s(spec.blackbox_pid) - bb0, _rusage_cpu() - cpu0
    hwm = _proc_hwm_kib(spec.blackbox_pid)
    for c in conns:
        c.close()
    return failures, first, wall, bb_cpu, client_cpu, hwm


def worker_main(spec_path: str) -> int:
    spec = Spec(**json.loads(Path(spec_path).read_text()))
    n = len(spec.ports) * spec.rounds
    result = RunResult(spec.kind, n, 0, 0.0, 0.0, 0)
    try:
        if spec.kind == "floor":
            result.failures, result.first_failure, result.wall_s, result.cpu_s = asyncio.run(_run_floor(spec))
            result.peak_rss_kib = _maxrss_kib()
        elif spec.kind == "certops":
            result.failures, result.first_failure, result.wall_s, result.cpu_s = asyncio.run(_run_certops(spec))
            result.peak_rss_kib = _maxrss_kib()
        elif spec.kind == "blackbox":
            (
                result.failures,
                result.first_failure,
                result.wall_s,
                result.cpu_s,
                result.client_cpu_s,
                result.peak_rss_kib,
            ) = asyncio.run(_run_blackbox(spec))
        else:
            result.error = f"unknown prober {spec.kind!r}"
    except ImportError as exc:
        result.error = f"engine not importable: {exc}"
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    print(json.dumps(asdict(result)))
    return 0


# --------------------------------------------------------------------------- orchestration


class Procs:
    """Every child we start, so all of them end on any exit (also Ctrl-C and SIGTERM)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[Any]] = []

    def start(self, args: list[str], **kw: Any) -> subprocess.Popen[Any]:
        # own session: a Ctrl-C reaches only us, and we end the children in order
        p = subprocess.Popen(args, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                p.wait(timeout=5)
        self.procs.clear()


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def ensure_packages() -> None:
    """apt-get install nginx and the exporter when their binaries are missing."""
    if Path(NGINX_BIN).exists() and Path(BLACKBOX_BIN).exists():
        return
    if shutil.which("apt-get") is None:
        raise SystemExit(f"need {NGINX_BIN} and {BLACKBOX_BIN}, and there is no apt-get")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    log(f"installing {' '.join(APT_PACKAGES)} with apt-get")
    # keep the packages' own services from starting (port 80, 9115): we run our own instances
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = False
    if os.geteuid() == 0 and not policy.exists():
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        made_policy = True
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run([*sudo, "apt-get", "update"], check=True, env=env, stdout=sys.stderr)
        subprocess.run(
            [*sudo, "apt-get", "install", "-y", "--no-install-recommends", *APT_PACKAGES],
            check=True,
            env=env,
            stdout=sys.stderr,
        )
    finally:
        if made_policy:
            policy.unlink()
    for b in (NGINX_BIN, BLACKBOX_BIN):
        if not Path(b).exists():
            raise SystemExit(f"{b} still missing after apt-get install")


def free_ports(n: int) -> list[int]:
    """N distinct free loopback ports: bind port 0 for all, then release them together."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def mint_certs(tmp: Path) -> tuple[Path, Path, Path]:
    """A private CA and an ECDSA P-256 leaf for bench.test; returns (ca.pem, leaf.pem, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certops bench CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTNAME)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOSTNAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_pem, leaf_pem, key_pem = tmp / "ca.pem", tmp / "leaf.pem", tmp / "leaf.key"
    ca_pem.write_bytes(ca.public_bytes(pem))
    leaf_pem.write_bytes(leaf.public_bytes(pem))
    key_pem.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key_pem.chmod(0o600)
    return ca_pem, leaf_pem, key_pem


def wait_listening(port: int, proc: subprocess.Popen[Any], what: str, log_file: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{tail}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} is not listening on 127.0.0.1:{port} after 15 s")


def tool_version(args: list[str]) -> str:
    try:
        cp = subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    out = (cp.stdout + cp.stderr).strip().splitlines()
    return out[0] if out else "?"


def cpu_ticks() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs from /proc/stat: how noisy the host is."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        vals = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return (vals[7] if len(vals) > 7 else 0), sum(vals[:8])
    return 0, 0


def steal_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else 0.0


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_worker(procs: Procs, spec: Spec, tmp: Path, timeout: float) -> RunResult:
    path = tmp / f"spec-{spec.kind}.json"
    path.write_text(json.dumps(asdict(spec)))
    p = procs.start(
        [sys.executable, str(Path(__file__).resolve()), "--worker", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(REPO_ROOT),
    )
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        procs.procs.remove(p)
        return RunResult(spec.kind, 0, 0, 0.0, 0.0, 0, error=f"timed out after {timeout:.0f} s")
    # on any other exception (Ctrl-C) the worker stays listed, so stop_all() ends it
    procs.procs.remove(p)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = err.strip().splitlines()[-3:]
        return RunResult(spec.kind, 0, 0, 0.0, 0.0, 0, error=f"worker exit {p.returncode}: {' | '.join(tail)}")
    data = json.loads(lines[-1])
    return RunResult(**data)


def engine_present() -> bool:
    engine = REPO_ROOT / "bot" / "probe" / "engine.py"
    return engine.exists() and "def probe_many" in engine.read_text()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--endpoints", type=int, default=500, help="TLS endpoints (nginx ports)")
    ap.add_argument("--rounds", type=int, default=6, help="probes per endpoint per run")
    ap.add_argument("--concurrency", type=int, default=50, help="probes in flight")
    ap.add_argument("--repeat", type=int, default=3, help="runs per prober (medians reported)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed probes first (default c)")
    ap.add_argument("--probers", default=",".join(PROBERS), help=f"subset of {','.join(PROBERS)}")
    ap.add_argument("--quick", action="store_true", help="small smoke run (50 x 2, c=20, 1 run)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    ap.add_argument("--worker", metavar="SPEC", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.endpoints, args.rounds, args.concurrency, args.repeat = 50, 2, 20, 1
    if min(args.endpoints, args.rounds, args.concurrency, args.repeat) < 1:
        ap.error("--endpoints, --rounds, --concurrency and --repeat must be >= 1")
    args.probers = [p.strip() for p in args.probers.split(",") if p.strip()]
    if unknown := set(args.probers) - set(PROBERS):
        ap.error(f"unknown prober(s): {', '.join(sorted(unknown))}")
    if args.warmup is None:
        args.warmup = args.concurrency
    return args


@contextlib.contextmanager
def _signals_as_interrupt() -> Iterator[None]:
    """SIGINT (also when inherited as ignored), SIGTERM and SIGHUP all end the run cleanly."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {s: signal.signal(s, handler) for s in sigs}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run_bench(args: argparse.Namespace) -> tuple[dict[str, Summary], dict[str, Any]]:
    probers = [p for p in PROBERS if p in args.probers]
    if "certops" in probers and not engine_present():
        log("bot/probe/engine.py has no probe_many yet: the certops row will be empty")
    ensure_packages()
    raise_nofile()
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="certops-bench-"))
    try:
        ca, leaf, key = mint_certs(tmp)
        ports = free_ports(args.endpoints + 1)
        bb_port, ports = ports[0], ports[1:]

        conf = tmp / "nginx.conf"
        conf.write_text(nginx_conf(tmp, ports, leaf, key, args.concurrency))
        nginx_log = tmp / "nginx-error.log"
        for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (tmp / f"nginx_{d}").mkdir()
        nginx = procs.start(
            [NGINX_BIN, "-p", str(tmp), "-e", str(nginx_log), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=nginx_log.open("ab"),
        )
        wait_listening(ports[0], nginx, "nginx", nginx_log)
        wait_listening(ports[-1], nginx, "nginx", nginx_log)

        bb_conf = tmp / "blackbox.yml"
        bb_conf.write_text(blackbox_config(ca))
        bb_log = tmp / "blackbox.log"
        blackbox = procs.start(
            [
                BLACKBOX_BIN,
                f"--config.file={bb_conf}",
                f"--web.listen-address=127.0.0.1:{bb_port}",
                "--log.level=error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=bb_log.open("ab"),
            cwd=str(tmp),
        )
        if "blackbox" in probers:
            wait_listening(bb_port, blackbox, "blackbox_exporter", bb_log)

        n = args.endpoints * args.rounds
        per_run_timeout = 60.0 + n * 0.05  # 20 probes/s would be pathological
        log(
            f"{args.endpoints} endpoints x {args.rounds} rounds = {n} probes, "
            f"c={args.concurrency}, {args.repeat} runs; temp dir {tmp}"
        )
        runs: dict[str, list[RunResult]] = {k: [] for k in probers}
        ticks0 = cpu_ticks()
        for rep in range(args.repeat):
            for kind in rep_order(rep, probers):
                if kind == "certops" and not engine_present():
                    runs[kind].append(RunResult(kind, 0, 0, 0.0, 0.0, 0, error="engine not there yet"))
                    continue
                spec = Spec(
                    kind=kind,
                    ports=ports,
                    rounds=args.rounds,
                    concurrency=args.concurrency,
                    ca_file=str(ca),
                    warmup=min(args.warmup, n),
                    blackbox_port=bb_port,
                    blackbox_pid=blackbox.pid,
                )
                r = run_worker(procs, spec, tmp, per_run_timeout)
                runs[kind].append(r)
                if r.error:
                    log(f"run {rep + 1} {kind}: ERROR {r.error}")
                else:
                    log(
                        f"run {rep + 1} {kind:<8} {r.probes_per_s:7.0f} probes/s "
                        f"{r.cpu_ms_per_probe:6.3f} CPU ms/probe "
                        f"{r.peak_rss_kib / 1024:6.1f} MiB  failures {r.failures}"
                    )
        meta: dict[str, Any] = {
            "endpoints": args.endpoints,
            "rounds": args.rounds,
            "probes": n,
            "concurrency": args.concurrency,
            "repeat": args.repeat,
            "cpus": os.cpu_count(),
            "cpu_steal_share": round(steal_share(ticks0, cpu_ticks()), 4),
            "python": sys.version.split()[0],
            "openssl": ssl.OPENSSL_VERSION,
            "nginx_version": tool_version([NGINX_BIN, "-v"]).split("/")[-1],
            "blackbox_version": " ".join(tool_version([BLACKBOX_BIN, "--version"]).split()[2:3]),
            "runs": {k: [asdict(r) for r in v] for k, v in runs.items()},
        }
        return {k: summarize(k, v) for k, v in runs.items()}, meta
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.worker)
    try:
        with _signals_as_interrupt():
            summaries, meta = run_bench(args)
    except KeyboardInterrupt:
        log("interrupted; children stopped and temp dir removed")
        return 130
    if args.json:
        out = {
            "meta": meta,
            "summary": {k: asdict(s) for k, s in summaries.items()},
            "ratios": ratios(summaries),
            "sites_per_round": {k: sites_per_round(s.cpu_ms_per_probe) for k, s in summaries.items() if s.runs},
            "target": {"sites_per_round": TARGET_SITES, "cpu_ratio_vs_blackbox": TARGET_CPU_RATIO},
        }
        print(json.dumps(out, indent=2))
    else:
        print(render(summaries, meta))
    broken = any(s.failures or s.runs == 0 for s in summaries.values())
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
