"""/ssl over real HTTP into the http mode: signed commands are acked fast, cards posted and
updated in place; forged, unsigned and stale requests are refused before anything happens."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from bot.chat import slack
from commands.model import Outcome, Request
from tests.chat.slack.harness import CHANNEL, command_body, running_bot, site_toml
from tests.fakes.tls import Lab


def test_a_signed_slash_command_is_acked_fast_and_its_card_is_updated_with_the_result(lab: Lab, tmp_path: Path) -> None:
    endpoint = lab.serve("localhost", days_left=45)

    async def scenario() -> None:
        async with running_bot(tmp_path, sites=site_toml("www", endpoint.port, lab.ca_file)) as bot:
            status, body, seconds = await bot.command("check www")
            assert status == 200
            assert seconds < 1.0
            ack = json.loads(body)
            assert ack["response_type"] == "ephemeral"
            assert "check www" in ack["text"]

            [posted] = await bot.api.wait_for("chat.postMessage")
            assert posted.body["channel"] == CHANNEL
            assert "Checking www" in posted.body["text"]
            [updated] = await bot.api.wait_for("chat.update")
            card = bot.api.only_message()
            assert updated.body["ts"] == card.ts
            assert card.text.startswith("www: OK")
            assert "www: OK" in card.block_text()
            assert [a["event"] for a in bot.audit()] == ["command"]

    asyncio.run(scenario())


def test_a_command_without_slow_work_is_answered_in_the_ack_itself(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_bot(tmp_path) as bot:
            incident = bot.open_incident()
            status, body, _ = await bot.command(f"ack {incident.id}")
            assert status == 200
            ack = json.loads(body)
            assert ack["response_type"] == "in_channel"
            assert ack["blocks"][0]["type"] == "header"
            assert f"{incident.id} acknowledged by u0alice" in ack["text"]
            assert bot.api.calls_to("chat.postMessage") == []
            assert bot.core.store.incident(incident.id).acked_by == "slack:U0ALICE"  # type: ignore[union-attr]

    asyncio.run(scenario())


def test_help_is_answered_privately_to_the_asker(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_bot(tmp_path) as bot:
            _, body, _ = await bot.command("")
            ack = json.loads(body)
            assert ack["response_type"] == "ephemeral"
            assert "/ssl heal &lt;site&gt;" in ack["text"]  # mrkdwn-escaped: Slack shows "<site>"
            assert any(b["type"] == "section" and b.get("fields") for b in ack["blocks"])

    asyncio.run(scenario())


def test_a_usage_error_is_answered_privately_with_the_right_usage(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_bot(tmp_path) as bot:
            _, body, _ = await bot.command("staus")
            ack = json.loads(body)
            assert ack["response_type"] == "ephemeral"
            assert 'There is no /ssl staus. (did you mean "status"?)' in ack["text"]
            _, body, _ = await bot.command("check")
            assert "Usage: /ssl check &lt;site|url&gt;" in json.loads(body)["text"]
            assert bot.new_calls() == []  # the answer went back in the ack; who the bot is was known from start()

    asyncio.run(scenario())


def test_when_the_bot_is_not_in_the_channel_the_card_and_result_go_through_response_url(
    lab: Lab, tmp_path: Path
) -> None:
    endpoint = lab.serve("localhost")

    async def scenario() -> None:
        sites = site_toml("www", endpoint.port, lab.ca_file)
        async with running_bot(tmp_path, sites=sites, not_member_of=(CHANNEL,)) as bot:
            status, _, _ = await bot.command("check www")
            assert status == 200
            card, result = await bot.api.wait_for("response_url", 2)
            assert (card.body["response_type"], card.body["replace_original"]) == ("in_channel", False)
            assert "Checking www" in card.body["text"]
            assert result.body["text"].startswith("www: OK")
            assert bot.api.messages == {}

    asyncio.run(scenario())


def test_a_redelivered_command_is_handled_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_bot(tmp_path) as bot:
            incident = bot.open_incident()
            body = command_body(
                f"ack {incident.id}", user="U0ALICE", response_url=bot.api.response_url(), trigger_id="77.42.x"
            )
            first, second = await bot.send(body), await bot.send(body)
            assert (first[0], second[0]) == (200, 200)
            assert "acknowledged" in first[1]
            assert second[1] == ""
            assert [a["event"] for a in bot.audit()] == ["command", "ack"]  # once, not twice

    asyncio.run(scenario())


def test_a_slow_core_still_gets_its_ack_in_time_and_the_answer_follows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slack, "ACK_BUDGET", 0.2)

    async def scenario() -> None:
        async with running_bot(tmp_path) as bot:
            real = bot.core.dispatcher.command

            async def sluggish(request: Request) -> Outcome:
                await asyncio.sleep(0.6)
                return await real(request)

            bot.core.dispatcher.command = sluggish  # type: ignore[method-assign]
            started = time.perf_counter()
            incident = bot.open_incident()
            status, body, seconds = await bot.command(f"ack {incident.id}")
            assert status == 200
            assert seconds < 0.5
            assert f"Working on /ssl ack {incident.id}" in json.loads(body)["text"]
            [card] = await bot.api.wait_for("chat.postMessage")
            assert time.perf_counter() - started >= 0.6
            assert f"{incident.id} acknowledged" in card.body["text"]

    asyncio.run(scenario())
