"""The web server on [bot] listen under slow and hostile clients: connections that never finish a
request head, never send their body or sit idle are closed on time; no more are open than the
descriptor limit allows, and at the bound /healthz still answers; running out of descriptors is
one log line a second, not a traceback per accept(); and `certops run`'s own log stays one short
line per refusal when unsigned and malformed webhooks arrive.

In-process tests drive serve_app with small WebLimits so each ends within a few seconds; the
`certops run` tests start the real process with a lowered RLIMIT_NOFILE, the way a systemd unit
without LimitNOFILE starts it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.web import MAX_CONNECTIONS, WebLimits, connection_bound, serve_app
from tests.fakes.hostile_requests import malformed_line, malformed_slack, send, unsigned_line, unsigned_slack
from tests.fakes.slow_client import SlowClients, Style
from tests.logs.logfmt import parse

FAST = WebLimits(head_timeout=0.5, body_timeout=0.5, idle_timeout=0.5)
RECORD_START = re.compile(
    r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(debug|info|warning|error|critical) logger=[\w.]+ msg="'
)


class App:
    """A small app on serve_app: /healthz, a POST route that reads its body, and a route that
    holds its request until released."""

    def __init__(self) -> None:
        self.bodies_read = 0
        self.release = asyncio.Event()
        self.holding = 0

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def events(self, request: web.Request) -> web.Response:
        await request.read()
        self.bodies_read += 1
        return web.Response(text="ok")

    async def hold(self, _request: web.Request) -> web.Response:
        self.holding += 1
        await self.release.wait()
        return web.Response(text="released")


@asynccontextmanager
async def served(limits: WebLimits) -> AsyncIterator[tuple[App, int]]:
    handlers = App()
    app = web.Application()
    app.add_routes(
        [web.get("/healthz", handlers.healthz), web.post("/events", handlers.events), web.get("/hold", handlers.hold)]
    )
    runner, port = await serve_app(app, "127.0.0.1", port=0, limits=limits)
    try:
        yield handlers, port
    finally:
        handlers.release.set()
        await runner.cleanup()


async def healthz(port: int, session: aiohttp.ClientSession) -> int:
    async with session.get(f"http://127.0.0.1:{port}/healthz", timeout=aiohttp.ClientTimeout(total=5)) as answer:
        await answer.read()
        return answer.status


def lines_about(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [r.getMessage() for r in caplog.get_records("call") if words in r.getMessage()]


# timeouts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["silent", "head"])
def test_a_connection_that_never_completes_its_request_head_is_closed_after_the_head_timeout(
    style: Style, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> int:
        async with served(FAST) as (_app, port), SlowClients("127.0.0.1", port, 20, style=style, interval=0.1) as c:
            assert c.open_count() == 20  # held open at first: the server only closes them on time
            return await c.wait_until_closed(0, timeout=5)

    assert asyncio.run(scenario()) == 0
    assert 1 <= len(lines_about(caplog, "sent no complete request head within 0.5 s")) <= 2  # one, then the count


def test_a_body_that_does_not_arrive_within_the_body_timeout_is_dropped_before_any_handler_reads_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> tuple[int, int]:
        async with served(FAST) as (app, port):
            async with SlowClients("127.0.0.1", port, 20, style="body", interval=0.1, path="/events") as clients:
                still_open = await clients.wait_until_closed(0, timeout=5)
            return still_open, app.bodies_read

    assert asyncio.run(scenario()) == (0, 0)
    assert 1 <= len(lines_about(caplog, "whose request body did not arrive within 0.5 s")) <= 2


def test_a_client_that_leaves_in_the_middle_of_its_body_costs_one_short_line_not_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)

    async def scenario() -> int:
        async with served(FAST) as (app, port):
            for _ in range(20):
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc")
                await writer.drain()
                writer.close()
                await writer.wait_closed()
            await asyncio.sleep(0.2)
            return app.bodies_read

    assert asyncio.run(scenario()) == 0
    records = caplog.get_records("call")
    assert [r for r in records if r.exc_info or r.levelno >= logging.ERROR] == []
    assert 1 <= len(lines_about(caplog, "whose body broke off (ConnectionResetError)")) <= 2


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> tuple[int, int]:
        async with served(FAST) as (_app, port), SlowClients("127.0.0.1", port, 20, style="idle") as clients:
            still_open = await clients.wait_until_closed(0, timeout=5)
            answered = sum(c.answered.startswith(b"HTTP/1.1 200") for c in clients.connections)
            return still_open, answered

    assert asyncio.run(scenario()) == (0, 20)  # each got its answer first
    assert [r for r in caplog.get_records("call") if r.name == "certops.web"] == []  # an idle close is routine


def test_a_client_that_keeps_making_requests_on_one_connection_is_never_cut_off() -> None:
    async def scenario() -> list[int]:
        async with served(FAST) as (_app, port):
            connector = aiohttp.TCPConnector(limit=1)  # one kept-alive connection for all requests
            async with aiohttp.ClientSession(connector=connector) as session:
                statuses = []
                for _ in range(8):  # 8 x 0.2 s: well past both timeouts, never idle for one
                    statuses.append(await healthz(port, session))
                    await asyncio.sleep(0.2)
                return statuses

    assert asyncio.run(scenario()) == [200] * 8


# the connection bound ---------------------------------------------------------------------------


def test_at_the_bound_the_connection_waiting_longest_makes_room_and_healthz_still_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limits = WebLimits(head_timeout=30, max_connections=20)  # only the bound closes anything here

    async def scenario() -> tuple[int, list[int]]:
        async with served(limits) as (_app, port), SlowClients("127.0.0.1", port, 30, style="head") as slow:
            open_now = await slow.wait_until_closed(20, timeout=5)
            async with aiohttp.ClientSession() as session:
                statuses = [await healthz(port, session) for _ in range(3)]
            return open_now, statuses

    open_now, statuses = asyncio.run(scenario())
    assert open_now <= 20
    assert statuses == [200, 200, 200]
    assert 1 <= len(lines_about(caplog, "connections open, the most allowed")) <= 3  # throttled, not one per close


@pytest.mark.parametrize(
    "head",
    [
        b"GET /" + b"a" * 1_000_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 100_000 + b"\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Bad\x00: 1\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    ],
    ids=["1 MB URL", "100,000 headers", "NUL in a name", "unknown version"],
)
def test_malformed_request_heads_get_400_and_a_throttled_line_not_a_traceback_each(
    head: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> list[bytes]:
        answers = []
        async with served(FAST) as (_app, port):
            for _ in range(5):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(head)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
                answers.append(await asyncio.wait_for(reader.read(12), 5))
                writer.close()
        return answers

    with caplog.at_level(logging.INFO):
        answers = asyncio.run(scenario())
    assert answers == [b"HTTP/1.0 400"] * 5
    records = caplog.get_records("call")
    assert not [r for r in records if r.exc_info], "no traceback for a client's malformed head"
    assert 1 <= len(lines_about(caplog, "malformed request head")) <= 2
    assert all(b"aaaa" not in r.getMessage().encode() for r in records)


def test_heads_sent_without_their_bodies_cannot_hold_every_slot_from_healthz(caplog: pytest.LogCaptureFixture) -> None:
    # each slow client sends a whole head announcing a body, then trickles it: waiting on a body is
    # waiting, not handling, so the bound makes room as it does for a head still coming
    limits = WebLimits(body_timeout=30, max_connections=20)

    async def scenario() -> list[int]:
        async with served(limits) as (_app, port), SlowClients("127.0.0.1", port, 20, style="body") as slow:
            await asyncio.sleep(0.3)  # every head is in and waits on its body
            assert slow.open_count() == 20
            async with aiohttp.ClientSession() as session:
                return [await healthz(port, session) for _ in range(3)]

    assert asyncio.run(scenario()) == [200, 200, 200]
    assert any("waiting for a request body" in line for line in lines_about(caplog, "the most allowed"))


def test_when_every_connection_is_busy_a_new_one_is_closed_at_once_and_service_resumes_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limits = WebLimits(max_connections=2)

    async def scenario() -> tuple[int, list[int]]:
        async with served(limits) as (app, port), aiohttp.ClientSession() as session:
            held = [asyncio.ensure_future(session.get(f"http://127.0.0.1:{port}/hold")) for _ in range(2)]
            while app.holding < 2:
                await asyncio.sleep(0.01)
            async with SlowClients("127.0.0.1", port, 1, style="silent") as extra:
                refused = await extra.wait_until_closed(0, timeout=5)
            app.release.set()
            for response in await asyncio.gather(*held):
                response.release()
            return refused, [await healthz(port, session) for _ in range(2)]

    assert asyncio.run(scenario()) == (0, [200, 200])
    assert lines_about(caplog, "all handling requests: refused one from 127.0.0.1")


@contextmanager
def descriptors_at_least(wanted: int) -> Iterator[None]:
    """This test process (client and server in one) needs two descriptors a connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        yield
        return
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"needs {wanted} file descriptors; the hard limit here is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_healthz_answers_while_the_issues_1100_slow_connections_are_open() -> None:
    limits = WebLimits(head_timeout=30, max_connections=MAX_CONNECTIONS)

    async def scenario() -> tuple[int, list[int]]:
        async with served(limits) as (_app, port), SlowClients("127.0.0.1", port, 1100, style="head") as slow:
            open_now = await slow.wait_until_closed(MAX_CONNECTIONS, timeout=10)
            async with aiohttp.ClientSession() as session:
                return open_now, [await healthz(port, session) for _ in range(5)]

    with descriptors_at_least(3000):
        open_now, statuses = asyncio.run(scenario())
    assert open_now <= MAX_CONNECTIONS
    assert statuses == [200] * 5


def test_the_connection_bound_keeps_a_reserve_of_descriptors_for_the_rest_of_the_bot() -> None:
    assert connection_bound(65536) == MAX_CONNECTIONS == 1024
    assert connection_bound(4096) == 1024
    assert connection_bound(1024) == 640  # systemd's default soft limit: 128 for one accept burst, 256 spare
    assert connection_bound(256) == 64
    assert connection_bound(64) == 1


# certops run ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def limit_descriptors(soft: int, hard: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return apply


@contextmanager
def certops_run(
    tmp_path: Path, extra: str = "", env: dict[str, str] | None = None, descriptors: tuple[int, int] | None = None
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    path = tmp_path / "certops.toml"
    path.write_text(f'[bot]\nlisten = "127.0.0.1:{port}"\ndatabase = "{tmp_path / "state.db"}"\n{extra}')
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run", "-c", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
        preexec_fn=limit_descriptors(*descriptors) if descriptors else None,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[1]
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stopped(proc: subprocess.Popen[str]) -> str:
    """Stops certops run and returns its log (stderr)."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    return err


def test_certops_run_with_fewer_descriptors_than_slow_connections_keeps_answering_healthz(tmp_path: Path) -> None:
    """The issue's 1,100 slow connections on 1,024 descriptors, at a quarter of the scale."""

    async def attack(port: int) -> list[int]:
        async with SlowClients("127.0.0.1", port, 300, style="head") as slow:
            await slow.wait_until_closed(64, timeout=10)
            async with aiohttp.ClientSession() as session:
                return [await healthz(port, session) for _ in range(5)]

    with certops_run(tmp_path, descriptors=(256, 256)) as (proc, port):
        statuses = asyncio.run(attack(port))
        log = stopped(proc)
    assert statuses == [200] * 5
    assert "Traceback" not in log
    assert "the process may open only 256 files: the web server takes at most 64 connections at once" in log
    web_lines = [line for line in log.splitlines() if " logger=certops.web " in line]
    assert "connections open, the most allowed" in log
    assert_one_line_a_second_per_reason(web_lines)


def assert_one_line_a_second_per_reason(lines: list[str]) -> None:
    """How long a flood lasts depends on the machine's load, so the count of lines is not fixed;
    what is fixed is the pace: per reason, no two lines within (almost) a second of each other."""
    seen: dict[str, float] = {}
    for line in lines:
        record = parse(line)
        assert record["logger"] == "certops.web", line
        stamp, message = record["ts"], record["msg"]
        at = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
        reason = re.sub(r"\d+", "N", message.split(" (")[0])[:40]
        if reason in seen:
            assert at - seen[reason] >= 0.9, (reason, lines)
        seen[reason] = at


def test_certops_run_raises_its_descriptor_limit_as_far_as_the_hard_limit_allows(tmp_path: Path) -> None:
    limits = Path("/proc/self/limits")
    if not limits.exists():
        pytest.skip("no /proc here to read another process's limits from")
    with certops_run(tmp_path, descriptors=(256, 4096)) as (proc, _port):
        text = Path(f"/proc/{proc.pid}/limits").read_text()
        log = stopped(proc)
    [line] = [line for line in text.splitlines() if line.startswith("Max open files")]
    assert line.split()[3:5] == ["4096", "4096"]
    assert "may open only" not in log


CHILD = """
import asyncio, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
from aiohttp import web
from bot.logs import setup_logging
from bot.web import WebLimits, serve_app
setup_logging()
async def main():
    runner, port = await serve_app(web.Application(), "127.0.0.1", 0, limits=WebLimits(max_connections=10_000))
    print(port, flush=True)
    await asyncio.sleep(30)
asyncio.run(main())
"""


def test_running_out_of_descriptors_logs_a_line_a_second_not_a_traceback_per_accept() -> None:
    # max_connections far above the descriptor limit, so that accept() itself runs out
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())

        async def flood() -> None:
            async with SlowClients("127.0.0.1", port, 150, style="silent", connect_timeout=1):
                await asyncio.sleep(2.5)

        asyncio.run(flood())
    finally:
        proc.kill()
        _, log = proc.communicate(timeout=30)
    assert "Traceback" not in log
    assert (
        'logger=certops.web msg="cannot accept a connection (Too many open files); asyncio retries in a second' in log
    )
    assert len(log.splitlines()) <= 6, log  # was a traceback per failed accept: 376 in 4 s here


def test_certops_run_logs_one_short_line_per_hostile_webhook_and_never_a_body(tmp_path: Path) -> None:
    slack_secret, line_secret = "s" * 32, "l" * 32
    env = {
        "T_SLACK_BOT": "xoxb-test",
        "T_SLACK_SIGNING": slack_secret,
        "T_LINE_SECRET": line_secret,
        "T_LINE_TOKEN": "line-token",
    }
    nowhere = f"http://127.0.0.1:{free_port()}/"  # Slack is unreachable: certops says so and carries on
    extra = (
        f'[chat.slack]\nmode = "http"\nchannel = "C0CERTOPS"\nbot_token_env = "T_SLACK_BOT"\n'
        f'signing_secret_env = "T_SLACK_SIGNING"\napi_url = "{nowhere}"\n'
        f'[chat.line]\nto = "C{"1" * 32}"\nchannel_secret_env = "T_LINE_SECRET"\naccess_token_env = "T_LINE_TOKEN"\n'
        f'api_url = "{nowhere}"\n'
    )
    sent: list[tuple[str, int, int]] = []

    async def attack(port: int) -> None:
        for path, cases in (
            ("/slack/events", unsigned_slack(slack_secret) + malformed_slack(slack_secret)),
            ("/line/webhook", unsigned_line(line_secret) + malformed_line(line_secret)),
        ):
            for case in cases:
                sent.append((case.name, case.expect, (await send("127.0.0.1", port, path, case)).status))

    with certops_run(tmp_path, extra, env) as (proc, port):
        asyncio.run(attack(port))
        log = stopped(proc)
    assert [(name, status) for name, expect, status in sent if status != expect] == []
    lines = [line for line in log.splitlines() if not line.startswith("certops run: ")]  # its own notes
    assert all(RECORD_START.match(line) for line in lines), [line for line in lines if not RECORD_START.match(line)]
    assert "Traceback" not in log
    assert "AAAAAAAA" not in log  # no body, not even part of one
    refusals = [line for line in lines if "refused POST" in line]
    assert 1 <= len(refusals) <= len(sent)
    # short: a refusal with its logfmt fields and a throttle's count is about 250 characters; a
    # line of a body, or a traceback, would be thousands
    assert max(len(line) for line in lines) < 400, max(lines, key=len)
    # was over a megabyte a request for the 1 MB bodies at INFO; a logfmt line of ~150 bytes a request at most
    assert len(log) < 150 * len(sent)
