"""Starting the Slack adapter: a wrong token stops the start with a message that says where the
token came from (never the token); an unreachable Slack does not stop the rest of the bot."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest

from bot.app import build_core
from bot.chat.slack import SlackAdapter, SlackSetupError
from bot.config import parse_config
from tests.chat.slack.harness import config_text
from tests.fakes.slack_api import SlackAPI


async def start_adapter(tmp_path: Path, api_url: str, mode: str) -> None:
    config = parse_config(config_text(api_url, mode=mode))
    assert config.slack is not None
    core = build_core(config, database=str(tmp_path / "certops.db"))
    adapter = SlackAdapter(config.slack, core)
    try:
        await adapter.start()
    finally:
        await adapter.stop()
        core.close()


def test_a_wrong_bot_token_stops_the_start_and_names_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CERTOPS_TEST_SLACK_BOT_TOKEN", "xoxb-revoked-secret-value")

    async def scenario() -> None:
        async with SlackAPI() as api:
            with pytest.raises(SlackSetupError) as caught:
                await start_adapter(tmp_path, api.api_url, "http")
            message = str(caught.value)
            assert "environment variable CERTOPS_TEST_SLACK_BOT_TOKEN" in message
            assert "invalid_auth" in message
            assert "revoked-secret-value" not in message

    asyncio.run(scenario())


def test_a_wrong_app_token_stops_a_socket_mode_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTOPS_TEST_SLACK_APP_TOKEN", "xapp-revoked-secret-value")

    async def scenario() -> None:
        async with SlackAPI() as api:
            with pytest.raises(SlackSetupError, match="CERTOPS_TEST_SLACK_APP_TOKEN") as caught:
                await start_adapter(tmp_path, api.api_url, "socket")
            assert "revoked-secret-value" not in str(caught.value)

    asyncio.run(scenario())


def test_an_unreachable_slack_is_logged_and_the_start_goes_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:  # a loopback port with nobody listening
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]

    with caplog.at_level(logging.WARNING, logger="certops.chat.slack"):
        asyncio.run(start_adapter(tmp_path, f"http://127.0.0.1:{closed}/api/", "http"))

    assert "Slack is not reachable now (auth.test" in caplog.text
    assert "xoxb-" not in caplog.text
