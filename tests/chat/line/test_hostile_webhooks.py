"""Hostile requests to /line/webhook: every one that fails verification gets 401, every authentic
but malformed one 400, each with at most one short log line and no other trace (no reply, no
push, no audit line, no event id burnt, never a traceback or the body)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bot.chat.line import check_body
from bot.web import Malformed
from tests.chat.line.harness import CHANNEL_SECRET, GROUP, LineBot, line_bot, text_event
from tests.fakes.hostile_requests import Hostile, line_event, line_signature, malformed_line, send, unsigned_line


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
        assert record.name == "certops.web.refusals", (case.name, record.name)
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


def test_a_delivery_of_hundreds_of_events_the_sdk_cannot_read_gets_200_and_no_line_per_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The SDK's own parser logs a line for each event it cannot read, with the event's type
    however long; certops leaves such events out without a word, and still acts on the rest."""
    caplog.set_level(logging.INFO)
    unknown = [line_event(type="x" * 2000) for _ in range(200)]  # a type newer than the SDK, say
    unreadable = [
        line_event(message={"type": "text", "id": "1", "quoteToken": "q", "text": "/ssl help", "emojis": "x"})
        for _ in range(200)
    ]
    body = json.dumps({"destination": "Ubot", "events": [*unknown, *unreadable, text_event("/ssl help")]}).encode()
    case = Hostile("events the SDK cannot read", body, signed_line(body), 200)

    async def scenario() -> int:
        async with line_bot(tmp_path, monkeypatch) as bot:
            caplog.clear()
            status = await send_one(bot, case)
            await bot.settle()
            assert len(bot.api.replies) == 1  # the one event it can read
            return status

    assert asyncio.run(scenario()) == 200
    messages = [record.getMessage() for record in caplog.get_records("call") if record.name.startswith("linebot")]
    assert messages == []
    assert all("xxxxxxxx" not in record.getMessage() for record in caplog.get_records("call"))


def test_a_replayed_delivery_of_hundreds_of_events_writes_one_line_not_one_per_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    now = int(time.time() * 1000)
    stale = [line_event(timestamp=now - 2 * 24 * 3600 * 1000, webhookEventId=f"01OLD{i}") for i in range(300)]
    recent = [text_event("/ssl nonsense", event_id=f"01NEW{i}") for i in range(300)]
    lines: dict[str, list[str]] = {}

    async def scenario() -> list[int]:
        statuses = []
        async with line_bot(tmp_path, monkeypatch) as bot:
            for name, events in [("stale", stale), ("first", recent), ("replayed", recent)]:
                body = json.dumps({"destination": "Ubot", "events": events}).encode()
                if name == "first":
                    statuses.append(await send_one(bot, Hostile(name, body, signed_line(body), 200)))
                    await bot.settle()
                    continue
                caplog.clear()
                statuses.append(await send_one(bot, Hostile(name, body, signed_line(body), 200)))
                await bot.settle()
                lines[name] = [record.getMessage() for record in caplog.get_records("call")]
        return statuses

    assert asyncio.run(scenario()) == [200, 200, 200]
    assert lines == {
        "stale": ["ignored 300 LINE events sent more than a day ago (a replay?)"],
        "replayed": ["ignored 300 LINE events already handled (replay or redelivery), the first 01NEW0"],
    }


def test_a_delivery_of_thousands_of_joins_notes_a_few_ids_not_one_line_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    joins = [line_event(type="join", message=None, source={"type": "group", "groupId": GROUP})] * 2000
    joins += [
        line_event(type="join", message=None, source={"type": "group", "groupId": f"C{i:032d}"}) for i in range(50)
    ]
    body = json.dumps({"destination": "Ubot", "events": joins}).encode()

    async def scenario() -> int:
        async with line_bot(tmp_path, monkeypatch) as bot:
            caplog.clear()
            status = await send_one(bot, Hostile("joins", body, signed_line(body), 200))
            await bot.settle()
            return status

    assert asyncio.run(scenario()) == 200
    lines = [record.getMessage() for record in caplog.get_records("call")]
    assert lines == [
        f'LINE: the bot joined {GROUP}; to post incidents there, set [chat.line] to = "{GROUP}"',
        f'LINE: the bot joined C{0:032d}; to post incidents there, set [chat.line] to = "C{0:032d}"',
        f'LINE: the bot joined C{1:032d}; to post incidents there, set [chat.line] to = "C{1:032d}"',
        "LINE: 48 more chats joined or friends added in the same delivery",
    ]


def signed_line(body: bytes) -> tuple[tuple[bytes, bytes], ...]:
    return (
        (b"Content-Type", b"application/json"),
        (b"X-Line-Signature", line_signature(CHANNEL_SECRET, body).encode()),
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 50_000 + b"]" * 50_000, "JSON nested too deep"),
        (b'{"events": {}}', "events is not a list"),
        (b'{"events": [{"type": "message", "source": "U1"}]}', "source is not an object"),
        (b'{"events": [{"type": "message", "source": {"userId": 7}}]}', "a field of source is not a string"),
        (b'{"events": [{"type": "message", "timestamp": true}]}', "an event timestamp that is not an integer"),
        (b'{"events": [], "destination": "\xff"}', "a body that is not UTF-8"),
        (b'{"events": [{"type": "message", "webhookEventId": "\\ud800x"}]}', "a JSON string with a lone surrogate"),
        (b'{"events": [{"type": "message", "\\udfff": 1}]}', "a JSON string with a lone surrogate"),
        (b'{"events": [{"type": "message", "timestamp": 1e999}]}', "a JSON number out of range"),
        (b'{"events": [], "x": Infinity}', "JSON that does not parse"),
        (b"", "JSON that does not parse"),
    ],
)
def test_the_body_check_names_the_first_problem_it_finds(body: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as raised:
        check_body(body)
    assert raised.value.reason == reason


def test_the_body_check_passes_a_real_webhook_through_unchanged() -> None:
    webhook = {"destination": "Ubot", "events": [text_event("/ssl help")]}
    assert check_body(json.dumps(webhook).encode()) == webhook
