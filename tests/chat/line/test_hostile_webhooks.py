"""Hostile requests to /line/webhook: every one that fails verification gets 401, every authentic
but malformed one 400, each with at most one short log line and no other trace (no reply, no
push, no audit line, no event id burnt, never a traceback or the body)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bot.chat.line import check_body
from bot.web import Malformed
from tests.chat.line.harness import CHANNEL_SECRET, LineBot, line_bot, text_event
from tests.fakes.hostile_requests import Hostile, malformed_line, send, unsigned_line


async def send_one(bot: LineBot, case: Hostile) -> int:
    parts = urlsplit(bot.url)
    assert parts.hostname is not None
    assert parts.port is not None
    return (await send(parts.hostname, parts.port, parts.path, case, timeout=5)).status


def assert_one_short_line_at_most(caplog: pytest.LogCaptureFixture, case: Hostile) -> None:
    records = caplog.get_records("call")
    assert len(records) <= 1, (case.name, [r.getMessage() for r in records])
    for record in records:
        message = record.getMessage()
        assert record.name == "bot.web.refusals", (case.name, record.name)
        assert record.exc_info is None
        assert message.startswith("refused POST /line/webhook from 127.0.0.1: "), message
        assert len(message) < 160, message


@pytest.mark.parametrize("kind", ["unsigned or badly signed", "signed but malformed"])
def test_every_hostile_webhook_gets_its_status_with_one_short_line_and_leaves_no_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    caplog.set_level(logging.INFO)
    hostile = unsigned_line(CHANNEL_SECRET) if kind.startswith("unsigned") else malformed_line(CHANNEL_SECRET)
    statuses: dict[str, int] = {}

    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            for case in hostile:
                caplog.clear()
                statuses[case.name] = await send_one(bot, case)
                assert_one_short_line_at_most(caplog, case)
            await bot.settle()
            assert bot.api.calls == []
            assert bot.audit() == []
            # nothing was burnt or broken: a genuine delivery still gets its free reply
            assert await bot.deliver(text_event("/ssl help")) == 200
            assert len(bot.api.replies) == 1

    asyncio.run(scenario())
    assert statuses == {case.name: case.expect for case in hostile}
    assert len(hostile) >= 13


def test_fifty_unsigned_one_megabyte_webhooks_write_a_couple_of_lines_and_no_body(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    [case] = [c for c in unsigned_line(CHANNEL_SECRET) if c.name == "an unsigned 1 MB body"]

    async def scenario() -> list[int]:
        async with line_bot(tmp_path, monkeypatch) as bot:
            caplog.clear()
            statuses = await asyncio.gather(*(send_one(bot, case) for _ in range(50)))
            await asyncio.sleep(1.2)  # the throttle's count of held lines goes out now
            return list(statuses)

    assert asyncio.run(scenario()) == [401] * 50
    records = caplog.get_records("call")
    assert len(records) <= 2
    assert all("AAAA" not in record.getMessage() for record in records)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 50_000 + b"]" * 50_000, "JSON nested too deep"),
        (b'{"events": {}}', "events is not a list"),
        (b'{"events": [{"type": "message", "source": "U1"}]}', "source is not an object"),
        (b'{"events": [{"type": "message", "source": {"userId": 7}}]}', "a field of source is not a string"),
        (b'{"events": [{"type": "message", "timestamp": true}]}', "an event timestamp that is not an integer"),
        (b'{"events": [], "destination": "\xff"}', "a body that is not UTF-8"),
    ],
)
def test_the_body_check_names_the_first_problem_it_finds(body: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as raised:
        check_body(body)
    assert raised.value.reason == reason


def test_the_body_check_passes_a_real_webhook_through_unchanged() -> None:
    body = json.dumps({"destination": "Ubot", "events": [text_event("/ssl help")]})
    assert check_body(body.encode()) == body
