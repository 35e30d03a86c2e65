"""What reading an HTTP answer costs: the probe's h11-based reader (bot/probe/http1.py) against
the hand-written one it replaced, read from git history (`--before REV`, default the last
revision that had it).

    .venv/bin/python bench/http_parse.py                  # parser figures, about 30 s
    .venv/bin/python bench/http_parse.py --probes 2000    # and whole loopback probes, a few minutes
    .venv/bin/python bench/http_parse.py --quick          # smoke run

Parser figures: each answer (an IIS-like 200 with 12 header fields and a 2 KiB body, the same
chunked, and the head alone as a HEAD answer) is read N times by each reader from a source that
hands over the whole answer in one read, as one TLS record does; rounds alternate between the
readers (the machine may be shared and noisy) and the table shows the best and the median round,
in microseconds of this process's CPU time per answer (time.process_time: a round preempted by
another process is not charged for the wait), and new/old. The chunk-flood row is in ms, best
round: the most a hostile chunked body can cost within the limits. The keyword rows compare the
old bytes search with page_contains() (a bytes search on a UTF-8 page, else page_text() and a
str search), on a 2 KiB page and on a 2 MiB one.

Probe figures (--probes N): N probes with probe_many (concurrency 50) of one loopback TLS server
(bot.testbed.tls_servers, a full handshake each), keyword off (HEAD) and on (GET), with the old
reader (and the old bytes search for the keyword) patched into bot.probe.engine, and with the new
one. Each run is a child process of its own, measured by its own rusage (the server's CPU, in
this process, is not counted); runs alternate; the median and the best run are shown.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # not bench/ itself: bench/host_actions.py would hide the package


BEFORE = "55ec63a2a0d4"  # the last revision whose bot/probe/http1.py parsed HTTP by hand


def _load_before(rev: str) -> Any:
    """The old reader, as it was at `rev`, imported under a name of its own."""
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{rev}:bot/probe/http1.py"], capture_output=True, text=True, check=True
    ).stdout
    spec = importlib.util.spec_from_loader("_http1_before", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_http1_before"] = module  # dataclasses looks its module up
    exec(compile(source, f"{rev}:bot/probe/http1.py", "exec"), module.__dict__)  # noqa: S102 - our own history
    return module


before = _load_before(next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--before=")), BEFORE))
from bot.probe import http1 as after  # noqa: E402

HEADERS = (
    b"Cache-Control: private\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"Server: Microsoft-IIS/10.0\r\n"
    b"X-AspNet-Version: 4.0.30319\r\n"
    b"X-Powered-By: ASP.NET\r\n"
    b"Date: Wed, 02 Dec 2026 03:00:00 GMT\r\n"
    b"Set-Cookie: ASP.NET_SessionId=k2j3h4g5f6d7s8a9; path=/; secure; HttpOnly; SameSite=Lax\r\n"
    b"Strict-Transport-Security: max-age=31536000; includeSubDomains\r\n"
    b"X-Frame-Options: SAMEORIGIN\r\n"
    b"X-Content-Type-Options: nosniff\r\n"
    b"Vary: Accept-Encoding\r\n"
)
PAGE = (b"<!DOCTYPE html><html><head><title>Welcome</title></head><body><p>" + b"lorem ipsum " * 164)[:2000] + (
    b"Welcome to the shop</p></body></html>"
)
PLAIN = b"HTTP/1.1 200 OK\r\n" + HEADERS + b"Content-Length: %d\r\n\r\n" % len(PAGE) + PAGE
CHUNKED = (
    b"HTTP/1.1 200 OK\r\n"
    + HEADERS
    + b"Transfer-Encoding: chunked\r\n\r\n"
    + b"".join(b"%x\r\n%s\r\n" % (len(PAGE[i : i + 1024]), PAGE[i : i + 1024]) for i in range(0, len(PAGE), 1024))
    + b"0\r\n\r\n"
)
HEAD_ONLY = b"HTTP/1.1 200 OK\r\n" + HEADERS + b"Content-Length: %d\r\n\r\n" % len(PAGE)
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
CASES = [
    ("200 + 12 fields + 2 KiB body (Content-Length)", PLAIN, "GET"),
    ("the same, chunked (2 chunks)", CHUNKED, "GET"),
    ("HEAD answer (12 fields)", HEAD_ONLY, "HEAD"),
]


class OneRead:
    """The whole answer in one read, then the end of the stream."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def read(self, n: int) -> bytes:
        data, self.data = self.data, b""
        return data


def _parse_rounds(module: Any, raw: bytes, method: str, n: int) -> float:
    async def go() -> float:
        want_body = method == "GET"
        started = time.process_time()
        for _ in range(n):
            await module.read_answer(OneRead(raw), want_body=want_body, method=method)
        return (time.process_time() - started) / n * 1e6

    return asyncio.run(go())


def _flood_ms(module: Any, raw: bytes) -> float:
    async def go() -> float:
        reader = asyncio.StreamReader()  # 64 KiB reads, as from a TLSStream
        reader.feed_data(raw)
        reader.feed_eof()
        started = time.process_time()
        with contextlib.suppress(module.HTTPProtocolError):  # "more than 100,000 chunks": the point
            await module.read_answer(reader, want_body=True, method="GET")
        return (time.process_time() - started) * 1000

    return asyncio.run(go())


def _timed(fn: Callable[[], object], n: int) -> float:
    started = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - started) / n * 1e6


def _row(name: str, old: list[float], new: list[float]) -> None:
    best_old, best_new = min(old), min(new)
    med_old, med_new = statistics.median(old), statistics.median(new)
    print(
        f"{name:<48} {best_old:>8.1f} {best_new:>8.1f} {best_new / best_old:>6.2f}x"
        f"   {med_old:>8.1f} {med_new:>8.1f} {med_new / med_old:>6.2f}x"
    )


def parser_figures(n: int, rounds: int) -> None:
    print(f"µs per answer, {n:,} answers a round, {rounds} rounds (best | median)")
    print(f"{'answer':<48} {'old':>8} {'new':>8} {'new/old':>7}   {'old':>8} {'new':>8} {'new/old':>7}")
    for name, raw, method in CASES:
        assert after.read_answer is not before.read_answer
        old: list[float] = []
        new: list[float] = []
        for r in range(rounds):
            order = [(before, old), (after, new)] if r % 2 == 0 else [(after, new), (before, old)]
            for module, out in order:
                out.append(_parse_rounds(module, raw, method, n))
        _row(name, old, new)

    # the worst a hostile server can make of a chunked body within the limits: MAX_CHUNKS chunks
    # of one byte each (both readers stop at the next one)
    flood = CHUNKED_HEAD + b"1\r\na\r\n" * 100_001 + b"0\r\n\r\n"
    old_f: list[float] = []
    new_f: list[float] = []
    for r in range(min(rounds, 3)):
        order = [(before, old_f), (after, new_f)] if r % 2 == 0 else [(after, new_f), (before, old_f)]
        for module, out in order:
            out.append(_flood_ms(module, flood))
    print(f"{'100,000 one-byte chunks, ms (a hostile server)':<48} ", end="")
    print(f"{min(old_f):>8.0f} {min(new_f):>8.0f} {min(new_f) / min(old_f):>6.2f}x")

    answer = after.Answer(200, {"content-type": "text/html; charset=utf-8"}, PAGE, {})
    keyword = "Welcome to the shop"
    sjis_page = "<html><body>ようこそ、ショップへ。".encode("cp932") + PAGE
    sjis = after.Answer(200, {"content-type": "text/html; charset=Shift_JIS"}, sjis_page, {})
    big = after.Answer(200, answer.headers, (PAGE * 1100)[: after.MAX_BODY], {})
    big_sjis = after.Answer(200, sjis.headers, (sjis_page * 1000)[: after.MAX_BODY], {})
    rows: list[tuple[str, Callable[[], object], Callable[[], object], int]] = [
        ("keyword in a 2 KiB UTF-8 page", lambda: _bytes_search(answer, keyword),
         lambda: after.page_contains(answer, keyword), n),
        ("keyword in a 2 KiB Shift_JIS page (old: bytes)", lambda: _bytes_search(sjis, "ようこそ"),
         lambda: after.page_contains(sjis, "ようこそ"), n),
        ("missing keyword, 2 MiB UTF-8 page", lambda: _bytes_search(big, "nowhere"),
         lambda: after.page_contains(big, "nowhere"), max(1, n // 100)),
        ("missing keyword, 2 MiB Shift_JIS page (old: bytes)", lambda: _bytes_search(big_sjis, "どこにも"),
         lambda: after.page_contains(big_sjis, "どこにも"), max(1, n // 100)),
    ]  # fmt: skip
    for name, old_fn, new_fn, count in rows:
        old_k: list[float] = []
        new_k: list[float] = []
        for _ in range(rounds):
            old_k.append(_timed(old_fn, count))
            new_k.append(_timed(new_fn, count))
        _row(name, old_k, new_k)


# --- whole probes ---------------------------------------------------------------------------

HOST = "bench.test"


def _bytes_search(answer: Any, keyword: str) -> bool:
    """What the engine searched before: the keyword's UTF-8 bytes in the body."""
    return keyword.encode() in answer.body


def child(spec: dict[str, Any]) -> None:
    from bot.probe import engine
    from bot.probe.model import ProbeTarget

    if spec["reader"] == "old":
        engine.read_answer = before.read_answer  # type: ignore[attr-defined]
        engine.page_contains = _bytes_search  # type: ignore[attr-defined]
    targets = [
        ProbeTarget(
            url=f"https://{HOST}:{spec['port']}/",
            hostname=HOST,
            port=spec["port"],
            connect_host="127.0.0.1",
            ca_file=spec["ca_file"],
            timeout=10.0,
            keyword=spec["keyword"],
        )
        for _ in range(spec["probes"])
    ]

    async def go() -> list[Any]:
        return await engine.probe_many(targets, concurrency=50)

    asyncio.run(engine.probe_many(targets[:50], concurrency=50))  # warm-up: imports, the CA file read
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    started = time.perf_counter()
    results = asyncio.run(go())
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - cpu
    failed = sum(1 for r in results if r.problems)
    json.dump({"cpu_ms": cpu * 1000 / len(results), "wall": wall, "failed": failed}, sys.stdout)


def probe_figures(probes: int, repeat: int) -> None:
    import tempfile

    from bot.testbed.pki import MiniCA
    from bot.testbed.tls_servers import Endpoint, TLSServers

    ca = MiniCA()
    with tempfile.TemporaryDirectory(prefix="certops-http-parse-") as scratch, TLSServers() as servers:
        ca_file = str(ca.write_ca(Path(scratch) / "ca.pem"))
        extra = {
            line.split(b": ", 1)[0].decode(): line.split(b": ", 1)[1].decode()
            for line in HEADERS.split(b"\r\n")
            if line and not line.startswith(b"Content-Type")
        }
        port = servers.add(Endpoint(ca.issue(HOST), headers=extra, body=PAGE)).port
        print(f"\nwhole probes: {probes:,} a run (probe_many, concurrency 50, one loopback server), {repeat} runs")
        print(f"{'keyword':<10} {'reader':<6} {'CPU ms/probe':>12} {'best run':>9} {'probes/s':>9} {'failed':>7}")
        figures: dict[tuple[str, str], list[dict[str, float]]] = {}
        combos = [(k, r) for k in ("off", "on") for r in ("old", "new")]
        for i in range(repeat):
            for keyword, reader in combos if i % 2 == 0 else list(reversed(combos)):
                spec = {
                    "reader": reader,
                    "keyword": "Welcome to the shop" if keyword == "on" else None,
                    "port": port,
                    "ca_file": ca_file,
                    "probes": probes,
                }
                out = subprocess.run(
                    [sys.executable, __file__, "--child", json.dumps(spec)],
                    check=True,
                    capture_output=True,
                    text=True,
                    cwd=REPO,
                )
                figures.setdefault((keyword, reader), []).append(json.loads(out.stdout))
        for keyword in ("off", "on"):
            medians = {}
            for reader in ("old", "new"):
                runs = figures[(keyword, reader)]
                cpu = statistics.median(r["cpu_ms"] for r in runs)
                best = min(r["cpu_ms"] for r in runs)
                rate = statistics.median(probes / r["wall"] for r in runs)
                failed = max(int(r["failed"]) for r in runs)
                medians[reader] = (cpu, best)
                print(f"{keyword:<10} {reader:<6} {cpu:>12.3f} {best:>9.3f} {rate:>9.0f} {failed:>7}")
            ratio, best_ratio = (medians["new"][i] / medians["old"][i] for i in (0, 1))
            print(f"{keyword:<10} {'new/old':<6} {ratio:>11.3f}x {best_ratio:>8.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5000, help="answers parsed a round (5000)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--probes", type=int, default=0, help="also run N whole loopback probes a run")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each probe variant (3)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few answers, 200 probes")
    parser.add_argument("--before", default=BEFORE, help=f"the revision of the old reader (default {BEFORE})")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    if args.quick:
        args.n, args.rounds, args.probes, args.repeat = 500, 3, args.probes and 200, 1
    parser_figures(args.n, args.rounds)
    if args.probes:
        probe_figures(args.probes, args.repeat)


if __name__ == "__main__":
    main()
