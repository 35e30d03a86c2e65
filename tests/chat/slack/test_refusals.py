"""certops verifies every http-mode request (HMAC-SHA256 over the raw body, 5-minute timestamp
window) before Bolt or anything else runs: a refused request leaves no audit line and makes no
Web API call. test_hostile_requests.py tries the malformed headers and bodies."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from urllib.parse import urlencode

from tests.chat.slack.harness import Bot, command_body, press_payload, running_bot, sign_body
from tests.fakes.slack_api import SIGNING_SECRET


def assert_no_trace(bot: Bot, status: int, body: str) -> None:
    assert status == 401
    assert json.loads(body) == {"error": "invalid request"}
    assert bot.new_calls() == []  # not even Bolt's auth.test
    assert bot.audit() == []


def test_it_refuses_an_unsigned_slash_command(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_bot(tmp_path) as bot:
            status, body, _ = await bot.send(
                command_body("help", user="U0ALICE", response_url=bot.api.response_url()), sign=False
            )
            assert_no_trace(bot, status, body)

    asyncio.run(scenario())


def test_it_refuses_a_slash_command_signed_with_another_secret(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_bot(tmp_path) as bot:
            status, body, _ = await bot.command("help", secret=SIGNING_SECRET + "-guessed")
            assert_no_trace(bot, status, body)

    asyncio.run(scenario())


def test_it_refuses_a_slash_command_with_a_timestamp_older_than_five_minutes(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_bot(tmp_path) as bot:
            status, body, _ = await bot.command("help", timestamp=time.time() - 5 * 60 - 30)
            assert_no_trace(bot, status, body)
            status, body, _ = await bot.command("help", timestamp=time.time() + 5 * 60 + 30)  # nor from the future
            assert_no_trace(bot, status, body)

    asyncio.run(scenario())


def test_it_refuses_a_body_changed_after_signing(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_bot(tmp_path) as bot:
            signed = command_body("status", user="U0MALLORY", response_url=bot.api.response_url())
            ts = str(int(time.time()))
            signature = sign_body(SIGNING_SECRET, ts, signed)
            tampered = signed.replace("U0MALLORY", "U0ALICE")
            async with bot.session.post(
                bot.url,
                data=tampered.encode(),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Slack-Request-Timestamp": ts,
                    "X-Slack-Signature": signature,
                },
            ) as response:
                assert_no_trace(bot, response.status, await response.text())

    asyncio.run(scenario())


def test_it_refuses_an_unsigned_button_press(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_bot(tmp_path) as bot:
            payload = press_payload(
                "act:whatever", "C0CERTOPS", "1.2", user="U0ALICE", response_url=bot.api.response_url()
            )
            status, body, _ = await bot.send(urlencode({"payload": json.dumps(payload)}), sign=False)
            assert_no_trace(bot, status, body)

    asyncio.run(scenario())
