"""`[chat.line] to` may be left out at first: the bot then answers in each group it is added to
with that group's id (a real join event, signed with the channel secret as LINE signs it), logs
it, and pushes nothing until `to` is set. Signature checks stay on."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bot.chat.base import DeliveryKind, Outgoing
from bot.cli import main
from bot.config import parse_config
from commands.model import Reply, Tone
from tests.chat.line.harness import APPROVER, GROUP, ROOM, config_text, line_bot, sign, source, text_event
from tests.chat.line.test_line_webhook import words

CARD = Reply("www: certificate expires in 3 days", Tone.WARNING, ("Not after 2030-01-04",), incident_id="INC-0007")


def join_event(src: dict[str, str]) -> dict[str, object]:
    """A join event as LINE sends it: a webhook event id, a reply token, the group, no message."""
    event: dict[str, object] = {**text_event("", src), "type": "join"}
    del event["message"]
    return event


def test_a_config_without_line_to_is_valid_and_the_settings_say_so() -> None:
    config = parse_config(config_text("http://127.0.0.1:9/", to=None), "test.toml")
    assert config.line is not None
    assert config.line.to is None


def test_check_config_warns_that_nothing_is_pushed_without_to_and_says_how_to_find_the_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CERTOPS_TEST_LINE_CHANNEL_SECRET", "s")
    monkeypatch.setenv("CERTOPS_TEST_LINE_ACCESS_TOKEN", "t")
    path = tmp_path / "certops.toml"
    path.write_text(config_text("http://127.0.0.1:9/", to=None))
    assert main(["check-config", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert (
        "warning: chat.line.to: not set: incidents are not pushed to LINE. Add the bot to the group that should "
        'get them: it answers there with the group\'s id, to copy into to = "C…"'
    ) in out.splitlines()
    assert "chat: line" in out


def test_without_to_the_bot_answers_a_signed_join_with_the_groups_id_and_logs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch, to=None) as bot:
            join = join_event(source(None, group=GROUP))
            with caplog.at_level("INFO", logger="certops.chat.line"):
                assert await bot.deliver(join) == 200
            [reply] = bot.api.replies
            assert reply.json["replyToken"] == join["replyToken"]
            assert words(reply) == (
                f"certops: this group's id is {GROUP}\n"
                f'To post incidents here, set  to = "{GROUP}"  under [chat.line] in certops.toml and restart certops.'
            )
            assert bot.api.pushes == []  # a reply is free; nothing counts against the quota
            assert f'LINE: the bot joined {GROUP}; to post incidents there, set [chat.line] to = "{GROUP}"' in (
                caplog.text
            )

            # the same delivery again (a redelivery, or a replay): answered once
            assert await bot.deliver(join) == 200
            assert len(bot.api.replies) == 1

    asyncio.run(scenario())


def test_a_room_join_is_answered_with_the_rooms_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch, to=None) as bot:
            assert await bot.deliver(join_event(source(None, room=ROOM))) == 200
            [reply] = bot.api.replies
            assert words(reply).startswith(f"certops: this room's id is {ROOM}\n")

    asyncio.run(scenario())


def test_a_join_with_a_wrong_signature_is_refused_and_not_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch, to=None) as bot:
            body = json.dumps({"destination": "Ubot", "events": [join_event(source(None, group=GROUP))]}).encode()
            assert await bot.post(body, sign(body, secret="not-the-channel-secret")) == 401
            assert await bot.post(body, None) == 401
            await bot.settle()
            assert bot.api.calls == []

    asyncio.run(scenario())


def test_without_to_commands_still_work_and_cards_are_not_pushed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch, to=None) as bot:
            assert await bot.deliver(text_event("/ssl help", source(APPROVER, group=GROUP))) == 200
            [reply] = bot.api.replies
            assert "certops commands" in words(reply)
            with caplog.at_level("INFO", logger="certops.chat.line"):
                assert await bot.adapter.deliver(Outgoing(DeliveryKind.NEW, CARD, retry_key="row-1")) is None
                assert await bot.adapter.post(CARD) is None
                await bot.adapter.update("1", CARD)
            assert bot.api.pushes == []
            assert "LINE: not pushed, [chat.line] to is not set: www: certificate expires in 3 days" in caplog.text

    asyncio.run(scenario())


def test_the_bot_warns_at_start_that_nothing_is_pushed_until_to_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        with caplog.at_level("WARNING", logger="certops.chat.line"):
            async with line_bot(tmp_path, monkeypatch, to=None):
                pass

    asyncio.run(scenario())
    assert "LINE: [chat.line] to is not set, so incidents are not pushed to LINE" in caplog.text


def test_with_to_set_a_join_is_only_logged_not_answered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            assert await bot.deliver(join_event(source(None, group="C" + "9" * 32))) == 200
            assert bot.api.calls == []

    asyncio.run(scenario())
