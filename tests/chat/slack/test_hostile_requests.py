"""Hostile requests to /slack/events in http mode: each one that fails verification gets 401,
each authentic but malformed one 400, and either way the log gets at most one short line
(method, path, remote address, reason) and nothing else happens: no Slack call, no audit line,
no traceback, never the body."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from bot.chat.slack import parse_body
from bot.web import Malformed
from tests.chat.slack.harness import Bot, running_bot
from tests.fakes.hostile_requests import (
    FORGED_LINE,
    FORM,
    Hostile,
    malformed_slack,
    send,
    slack_press,
    slack_signed,
    unsigned_slack,
)
from tests.fakes.slack_api import SIGNING_SECRET


async def send_one(bot: Bot, case: Hostile) -> tuple[int, bytes]:
    parts = urlsplit(bot.url)
    assert parts.hostname is not None
    assert parts.port is not None
    answer = await send(parts.hostname, parts.port, parts.path, case, timeout=5)
    return answer.status, answer.body


def assert_one_short_line_at_most(caplog: pytest.LogCaptureFixture, case: Hostile) -> None:
    records = caplog.get_records("call")
    assert len(records) <= 1, (case.name, [r.getMessage() for r in records])
    for record in records:
        message = record.getMessage()
        assert record.name == "certops.web.refusals", (case.name, record.name)
        assert record.exc_info is None
        assert message.startswith("refused POST /slack/events from 127.0.0.1: "), message
        assert len(message) < 160, message
        assert "\n" not in message


def test_every_unsigned_or_badly_signed_request_gets_401_one_short_line_and_leaves_no_trace(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    outcomes: dict[str, int] = {}

    async def scenario() -> None:
        async with running_bot(tmp_path) as bot:
            for case in unsigned_slack(SIGNING_SECRET):
                caplog.clear()
                status, body = await send_one(bot, case)
                outcomes[case.name] = status
                assert_one_short_line_at_most(caplog, case)
                if status == 401:
                    assert json.loads(body) == {"error": "invalid request"}
            assert bot.new_calls() == []  # not even Bolt's auth.test
            assert bot.audit() == []

    asyncio.run(scenario())
    wrong = {name: status for name, status in outcomes.items() if status != expected(name)}
    assert wrong == {}
    assert len(outcomes) >= 20


def expected(name: str) -> int:
    return next(case.expect for case in unsigned_slack(SIGNING_SECRET) if case.name == name)


def test_every_signed_but_malformed_body_gets_400_one_short_line_and_reaches_no_listener(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    cases = malformed_slack(SIGNING_SECRET)

    async def scenario() -> None:
        async with running_bot(tmp_path) as bot:
            for case in cases:
                caplog.clear()
                status, body = await send_one(bot, case)
                assert (case.name, status) == (case.name, 400)
                assert json.loads(body) == {"error": "malformed request"}
                assert_one_short_line_at_most(caplog, case)
            await asyncio.sleep(0.1)  # a listener that had run would have called Slack by now
            assert bot.new_calls() == []
            assert bot.audit() == []
            # and the bot still works for a real command afterwards
            status, _, _ = await bot.command("help")
            assert status == 200

    asyncio.run(scenario())
    assert len(cases) >= 20


def test_fifty_unsigned_one_megabyte_bodies_write_a_couple_of_lines_and_no_body(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    [case] = [c for c in unsigned_slack(SIGNING_SECRET) if c.name == "an unsigned 1 MB body"]

    async def scenario() -> list[int]:
        async with running_bot(tmp_path) as bot:
            caplog.clear()
            answers = await asyncio.gather(*(send_one(bot, case) for _ in range(50)))
            await asyncio.sleep(1.2)  # the throttle's count of held lines goes out now
            return [status for status, _ in answers]

    statuses = asyncio.run(scenario())
    assert statuses == [401] * 50
    text = "\n".join(record.getMessage() for record in caplog.get_records("call"))
    assert "AAAA" not in text
    assert len(caplog.get_records("call")) <= 2
    assert len(text) < 400  # was 50 MB: Bolt logged each refused body whole, at INFO


def test_a_forged_log_line_in_an_unsigned_body_never_reaches_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = urlencode({"command": "/ssl", "text": "help" + FORGED_LINE}).encode()
    case = Hostile("forged", body, ((b"Content-Type", FORM),), 401)

    async def scenario() -> int:
        async with running_bot(tmp_path) as bot:
            caplog.clear()
            status, _ = await send_one(bot, case)
            return status

    assert asyncio.run(scenario()) == 401
    records = caplog.get_records("call")
    assert all("approved repair-store" not in record.getMessage() for record in records)
    # Bolt logs a refused body at INFO; even with the root logger at DEBUG it says nothing
    assert [record for record in records if "slack_bolt" in record.name or ".bolt" in record.name] == []


def test_slacks_unsigned_ssl_check_gets_an_empty_200_as_bolt_would_give_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    case = Hostile("ssl check", b"ssl_check=1&token=legacy", ((b"Content-Type", FORM),), 200)

    async def scenario() -> tuple[int, bytes]:
        async with running_bot(tmp_path) as bot:
            caplog.clear()
            answer = await send_one(bot, case)
            assert bot.new_calls() == []
            return answer

    assert asyncio.run(scenario()) == (200, b"")
    assert caplog.get_records("call") == []


def test_a_signed_press_with_a_well_formed_payload_still_reaches_the_press_listener(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_bot(tmp_path) as bot:
            body = urlencode({"payload": json.dumps(slack_press(response_url=bot.api.response_url()))}).encode()
            status, _ = await send_one(bot, Hostile("press", body, slack_signed(SIGNING_SECRET, body), 200))
            assert status == 200
            # a button certops never made: the presser alone is told, through the response_url
            [answer] = await bot.api.wait_for("response_url")
            assert answer.body["response_type"] == "ephemeral"

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"\xff", "application/x-www-form-urlencoded", "a body that is not UTF-8"),
        (b"payload=" + b"%5B" * 70 + b"%5D" * 70, "application/x-www-form-urlencoded", "JSON nested too deep"),
        (b"[" * 50_000 + b"]" * 50_000, "application/json", "JSON nested too deep"),
        (b'{"type": "block_actions", "user": {"id": "U1"}}', "application/json", "a button press without actions"),
        (b"payload=%7B%22user%22%3A%201%7D", "application/x-www-form-urlencoded", "user is not an object or an id"),
        (b'{"event": {"user": {"id": 5}}}', "application/json", "user.id is not a string"),
    ],
)
def test_the_body_parser_names_the_first_problem_it_finds(body: bytes, content_type: str, reason: str) -> None:
    with pytest.raises(Malformed) as raised:
        parse_body(body, content_type)
    assert raised.value.reason == reason


def test_the_body_parser_reads_a_slash_command_and_a_real_press_as_bolt_does() -> None:
    text, command = parse_body(b"command=%2Fssl&text=status+www&user_id=U1", "application/x-www-form-urlencoded")
    assert command == {"command": "/ssl", "text": "status www", "user_id": "U1"}
    assert text == "command=%2Fssl&text=status+www&user_id=U1"
    press = slack_press(message={"type": "message", "user": "U0BOT", "team": "T0", "blocks": [{"type": "rich_text"}]})
    _, parsed = parse_body(urlencode({"payload": json.dumps(press)}).encode(), "application/x-www-form-urlencoded")
    assert parsed == press
