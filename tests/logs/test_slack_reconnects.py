"""A Slack Socket Mode outage logs one line per reconnect attempt, not slack_sdk's several lines
and a traceback each. The adapter runs for real against the Slack stand-in: its
apps.connections.open answers a WebSocket URL that refuses connections (or one that hangs up),
or Slack revokes the app token while the socket is up; the lines are counted over the attempts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import bot.chat.slack
import bot.chat.slack_reconnects
from bot.app import build_core
from bot.chat.slack import BOLT_LOG, SlackAdapter
from bot.chat.slack_reconnects import ReconnectStorm
from bot.config import parse_config
from bot.web import serve_app
from tests.chat.slack.harness import ENV, config_text
from tests.fakes.slack_api import SlackAPI

SUMMARY = "certops.chat.slack.socket_mode"
# Bolt's one line at start, whatever the socket does (certops passes authorize= and a token)
BOLT_START = "As `installation_store` or `authorize` has been used"


@pytest.fixture(autouse=True)
def fast_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slack's tokens in the environment; the socket client's 10 s between attempts made 0.1 s,
    and no throttle on the attempt lines, so that every attempt's line is there to count."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(bot.chat.slack, "SOCKET_PING_INTERVAL", 0.1)
    monkeypatch.setattr(bot.chat.slack_reconnects, "MIN_GAP", 0.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ElsewhereSlack(SlackAPI):
    """apps.connections.open answers a WebSocket URL on `port`, where nothing listens (until a
    test serves something there)."""

    def __init__(self) -> None:
        super().__init__()
        self.port = free_port()

    async def __aenter__(self) -> ElsewhereSlack:
        await super().__aenter__()
        return self

    def _apps_connections_open(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"}


@asynccontextmanager
async def socket_adapter(tmp_path: Path, api: SlackAPI) -> AsyncIterator[SlackAdapter]:
    config = parse_config(config_text(api.api_url, mode="socket"))
    assert config.slack is not None
    core = build_core(config, database=str(tmp_path / "certops.db"))
    adapter = SlackAdapter(config.slack, core)
    try:
        await adapter.start()
        yield adapter
    finally:
        await adapter.stop()
        core.close()


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def summaries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == SUMMARY]


def slack_lines(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[logging.LogRecord]:
    """What Slack's libraries and the adapter's Bolt logger wrote at `level` or above."""
    return [
        r
        for r in caplog.records
        if r.levelno >= level and r.name.startswith(("slack_sdk", "slack_bolt", "certops.chat.slack.bolt"))
    ]


def test_a_socket_url_that_refuses_connections_logs_one_line_per_attempt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    async def scenario() -> None:
        async with ElsewhereSlack() as api, socket_adapter(tmp_path, api):
            await until(lambda: len(summaries(caplog)) >= 6)

    asyncio.run(scenario())
    lines = summaries(caplog)
    assert lines == [
        f"slack socket mode: reconnecting (attempt {n}): ClientConnectorError (ConnectionRefusedError)"
        for n in range(1, len(lines) + 1)
    ]
    assert [r.getMessage()[: len(BOLT_START)] for r in slack_lines(caplog)] == [BOLT_START]  # none of the storm
    assert not [r for r in caplog.records if r.exc_info]  # no traceback per attempt
    assert "Failed to connect" not in caplog.text
    record = next(r for r in caplog.records if r.name == SUMMARY)
    assert (record.levelno, record.__dict__["platform"], record.__dict__["attempt"]) == (logging.WARNING, "slack", 1)


def test_the_lines_are_as_many_as_the_attempts_on_the_wire(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Counted where the socket client dials: each WebSocket upgrade request is answered 503, as
    an overloaded edge would. (A port that hangs up at once is not countable: aiohttp dials such
    a request again by itself, two connections an attempt.)"""
    caplog.set_level(logging.INFO)
    dialled = 0

    async def unavailable(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal dialled
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            dialled += 1
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        writer.close()

    async def scenario() -> None:
        async with ElsewhereSlack() as api:
            server = await asyncio.start_server(unavailable, "127.0.0.1", api.port)
            async with server, socket_adapter(tmp_path, api):
                await until(lambda: dialled >= 8)
                await until(lambda: len(summaries(caplog)) >= dialled)  # the latest attempt's line

    asyncio.run(scenario())
    lines = summaries(caplog)
    assert dialled <= len(lines) <= dialled + 1  # at most one more attempt after the count
    assert lines == [
        f"slack socket mode: reconnecting (attempt {n}): WSServerHandshakeError" for n in range(1, len(lines) + 1)
    ]
    assert len(slack_lines(caplog)) == 1  # Bolt's line at start; nothing per attempt


def test_a_revoked_app_token_then_a_recovery_are_one_line_per_attempt_and_one_line_for_the_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The socket is up; Slack drops it and refuses a new URL (invalid_auth) for a while."""
    caplog.set_level(logging.INFO)

    async def scenario() -> None:
        async with SlackAPI() as api, socket_adapter(tmp_path, api):
            await api.wait_for_socket()
            api.fail(error="invalid_auth", methods=["apps.connections.open"])
            for ws in list(api._sockets):
                await ws.close()
            await until(lambda: len(summaries(caplog)) >= 4)
            api.recover()
            await until(lambda: any("connected again" in line for line in summaries(caplog)))
            assert len(api.calls_to("apps.connections.open")) >= 5  # the check at start, then each attempt

    asyncio.run(scenario())
    *attempts, end = summaries(caplog)
    assert attempts == [
        f"slack socket mode: reconnecting (attempt {n}): SlackApiError invalid_auth"
        for n in range(1, len(attempts) + 1)
    ]
    assert end == f"slack socket mode: connected again after {len(attempts)} failed attempts"
    assert [r.getMessage()[: len(BOLT_START)] for r in slack_lines(caplog)] == [BOLT_START]
    assert "Failed to" not in caplog.text
    assert "xapp-" not in caplog.text


def test_at_debug_the_sdk_s_own_lines_are_kept_but_only_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        async with ElsewhereSlack() as api, socket_adapter(tmp_path, api):
            await until(lambda: len(summaries(caplog)) >= 3)

    asyncio.run(scenario())
    assert len(slack_lines(caplog, logging.INFO)) == 1  # Bolt's line at start
    kept = [r for r in slack_lines(caplog, logging.DEBUG) if r.getMessage().startswith("Failed to connect")]
    assert kept
    assert {r.levelno for r in kept} == {logging.DEBUG}


def test_the_filter_lets_other_lines_through_and_comes_off_when_the_adapter_stops(tmp_path: Path) -> None:
    other = logging.LogRecord(BOLT_LOG.name, logging.ERROR, __file__, 1, "Failed to run a listener function", (), None)
    storm = ReconnectStorm(BOLT_LOG)
    assert storm.filter(other) is True
    assert other.levelno == logging.ERROR

    async def scenario() -> None:
        async with ElsewhereSlack() as api, socket_adapter(tmp_path, api):
            assert any(isinstance(f, ReconnectStorm) for f in BOLT_LOG.filters)

    asyncio.run(scenario())
    assert not any(isinstance(f, ReconnectStorm) for f in BOLT_LOG.filters)
    assert not any(isinstance(f, ReconnectStorm) for f in logging.getLogger("slack_sdk.web.async_base_client").filters)


def test_the_stand_in_s_socket_on_another_port_is_reached_after_refusals(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Refused first, then the port starts answering: the end of the outage is one line."""
    caplog.set_level(logging.INFO)

    async def scenario() -> None:
        async with ElsewhereSlack() as api, socket_adapter(tmp_path, api):
            await until(lambda: len(summaries(caplog)) >= 3)
            app = web.Application()
            app.router.add_get("/socket", api._socket)
            runner, _port = await serve_app(app, "127.0.0.1", api.port)
            try:
                await api.wait_for_socket()
                await until(lambda: any("connected again" in line for line in summaries(caplog)))
            finally:
                await runner.cleanup()

    asyncio.run(scenario())
    *attempts, end = summaries(caplog)
    assert len(attempts) >= 3
    assert end == f"slack socket mode: connected again after {len(attempts)} failed attempts"
