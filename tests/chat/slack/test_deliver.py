"""The Slack adapter as the outbox's destination: deliver() posts, edits and threads cards through
the Web API stand-in, and sorts every failure into transient (retry later, after Retry-After) or
permanent (fail the row), with a message that names the error code and nothing secret."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import bot.chat.slack as slack_module
from bot.chat.base import DeliveryError, DeliveryKind, Outgoing
from bot.chat.slack import SlackAdapter
from commands.model import Button, Reply, Tone
from host_actions.simulator import WinRMSimulator
from tests.chat.destinations import SLACK_CHANNEL, slack_destination
from tests.chat.slack.harness import CHANNEL, running_bot
from tests.chat.slack.test_buttons import request_for
from tests.fakes.slack_api import BOT_TOKEN, SlackAPI, text_of

CARD = Reply("www: certificate expires in 3 days", Tone.WARNING, ("Not after 2030-01-04",), incident_id="INC-0007")
EDITED = Reply("Resolved: www", Tone.OK, ("Renewed; the new certificate is served",), incident_id="INC-0007")
NEWS = Reply("www is still failing", Tone.CRITICAL, ("Open for 2 hours",), incident_id="INC-0007")

Scenario = Callable[[SlackAPI, SlackAdapter], Awaitable[None]]


def run(monkeypatch: pytest.MonkeyPatch, scenario: Scenario) -> None:
    async def main() -> None:
        async with slack_destination(monkeypatch) as (api, adapter):
            await scenario(api, adapter)

    asyncio.run(main())


async def refused(adapter: SlackAdapter, message: Outgoing) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        await adapter.deliver(message)
    return caught.value


def test_a_new_delivery_posts_the_card_to_the_incident_channel_and_returns_channel_and_ts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario(api: SlackAPI, adapter: SlackAdapter) -> None:
        ref = await adapter.deliver(Outgoing(DeliveryKind.NEW, CARD, retry_key="k1"))
        message = api.only_message()
        assert ref == f"{SLACK_CHANNEL}:{message.ts}"
        assert "www: certificate expires in 3 days" in message.block_text()
        assert "Incident *INC-0007*" in message.block_text()

    run(monkeypatch, scenario)


def test_an_edit_replaces_the_card_in_place_and_keeps_its_ref(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(api: SlackAPI, adapter: SlackAdapter) -> None:
        ref = await adapter.deliver(Outgoing(DeliveryKind.NEW, CARD))
        assert await adapter.deliver(Outgoing(DeliveryKind.EDIT, EDITED, ref)) == ref
        message = api.only_message()
        assert message.edits == 1
        assert "Resolved: www" in message.block_text()
        assert "expires in 3 days" not in message.block_text()

    run(monkeypatch, scenario)


def test_an_edit_of_a_card_someone_deleted_posts_a_fresh_card_and_returns_its_ref(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario(api: SlackAPI, adapter: SlackAdapter) -> None:
        ref = await adapter.deliver(Outgoing(DeliveryKind.NEW, CARD))
        assert ref is not None
        api.delete(*ref.split(":"))
        fresh = await adapter.deliver(Outgoing(DeliveryKind.EDIT, EDITED, ref))
        assert fresh is not None
        assert fresh != ref
        assert [c.error for c in api.calls_to("chat.update")] == ["message_not_found"]
        assert "Resolved: www" in api.message(*fresh.split(":")).block_text()

    run(monkeypatch, scenario)


def test_an_edit_without_a_ref_posts_a_new_card(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(api: SlackAPI, adapter: SlackAdapter) -> None:
        ref = await adapter.deliver(Outgoing(DeliveryKind.EDIT, EDITED))
        assert ref == f"{SLACK_CHANNEL}:{api.only_message().ts}"
        assert api.calls_to("chat.update") == []

    run(monkeypatch, scenario)


def test_a_renotification_is_a_reply_under_the_card_also_shown_in_the_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(api: SlackAPI, adapter: SlackAdapter) -> None:
        ref = await adapter.deliver(Outgoing(DeliveryKind.NEW, CARD))
        assert ref is not None
        assert await adapter.deliver(Outgoing(DeliveryKind.THREAD, NEWS, ref)) == ref
        _, thread = api.calls_to("chat.postMessage")
        assert thread.body["thread_ts"] == ref.split(":")[1]
        assert thread.body["reply_broadcast"] in (True, "1", "true")
        assert "www is still failing" in text_of(thread.body["blocks"])

    run(monkeypatch, scenario)


def test_a_renotification_without_a_card_is_a_plain_post(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(api: SlackAPI, adapter: SlackAdapter) -> None:
        ref = await adapter.deliver(Outgoing(DeliveryKind.THREAD, NEWS))
        [post] = api.calls_to("chat.postMessage")
        assert "thread_ts" not in post.body
        assert ref == f"{SLACK_CHANNEL}:{api.only_message().ts}"

    run(monkeypatch, scenario)


def test_a_rate_limit_is_transient_and_carries_slacks_retry_after_without_a_retry_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario(api: SlackAPI, adapter: SlackAdapter) -> None:
        api.fail(429, error="ratelimited", retry_after=7, times=1)
        error = await refused(adapter, Outgoing(DeliveryKind.NEW, CARD))
        assert not error.permanent
        assert error.retry_after == 7.0
        assert "ratelimited" in str(error)
        assert len(api.calls_to("chat.postMessage")) == 1  # slack_sdk did not sleep and retry behind our back
        assert api.messages == {}

    run(monkeypatch, scenario)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (503, None),
        (500, "internal_error"),
        (200, "fatal_error"),
        (200, "service_unavailable"),
        (200, "request_timeout"),
    ],
)
def test_an_outage_or_a_slack_side_error_is_transient(
    monkeypatch: pytest.MonkeyPatch, status: int, error: str | None
) -> None:
    async def scenario(api: SlackAPI, adapter: SlackAdapter) -> None:
        api.fail(status, error=error, times=1)
        failure = await refused(adapter, Outgoing(DeliveryKind.NEW, CARD))
        assert not failure.permanent
        assert failure.retry_after is None
        assert await adapter.deliver(Outgoing(DeliveryKind.NEW, CARD)) is not None  # and then it works

    run(monkeypatch, scenario)


@pytest.mark.parametrize(
    "error",
    [
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "token_revoked",
        "missing_scope",
        "msg_too_long",
    ],
)
def test_a_refusal_no_retry_can_change_is_permanent_and_names_only_the_error_code(
    monkeypatch: pytest.MonkeyPatch, error: str
) -> None:
    async def scenario(api: SlackAPI, adapter: SlackAdapter) -> None:
        api.fail(error=error, times=1)
        failure = await refused(adapter, Outgoing(DeliveryKind.NEW, CARD))
        assert failure.permanent
        assert str(failure) == f"Slack chat.postMessage: {error}"
        assert BOT_TOKEN not in str(failure)

    run(monkeypatch, scenario)


def test_a_failed_edit_is_classified_like_a_post_and_posts_nothing_new(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(api: SlackAPI, adapter: SlackAdapter) -> None:
        ref = await adapter.deliver(Outgoing(DeliveryKind.NEW, CARD))
        api.fail(503, methods=["chat.update"], times=1)
        failure = await refused(adapter, Outgoing(DeliveryKind.EDIT, EDITED, ref))
        assert not failure.permanent
        assert len(api.calls_to("chat.postMessage")) == 1

    run(monkeypatch, scenario)


def test_an_unreachable_slack_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(api: SlackAPI, adapter: SlackAdapter) -> None:
        await api.__aexit__(None, None, None)  # Slack is gone: connection refused
        failure = await refused(adapter, Outgoing(DeliveryKind.NEW, CARD))
        assert not failure.permanent
        assert str(failure).startswith("Slack chat.postMessage: ")

    run(monkeypatch, scenario)


def test_a_slack_that_does_not_answer_in_time_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slack_module, "DELIVERY_TIMEOUT", 0.05)

    async def scenario(api: SlackAPI, adapter: SlackAdapter) -> None:
        api.fail(delay=0.5, times=1)
        failure = await refused(adapter, Outgoing(DeliveryKind.NEW, CARD))
        assert not failure.permanent
        assert str(failure) == "Slack chat.postMessage: TimeoutError"

    run(monkeypatch, scenario)


def test_a_card_delivered_by_the_outbox_keeps_its_content_when_a_button_on_it_is_pressed(
    tmp_path: Path, sim: WinRMSimulator
) -> None:
    async def scenario() -> None:
        async with running_bot(tmp_path, sim=sim) as bot:
            repair, verify = request_for(bot, sim), request_for(bot, sim, "verify-binding")
            buttons = tuple(Button(r.action, f"act:{r.token}", "primary") for r in (repair, verify))
            card = Reply("www: needs repair", Tone.CRITICAL, ("Missing stored keyset",), buttons=buttons)
            ref = await bot.adapter.deliver(Outgoing(DeliveryKind.NEW, card, retry_key="row-1"))
            assert ref is not None
            assert ref.startswith(f"{CHANNEL}:")  # the incident channel of the config
            # the press carries no copy of the card: what it shows must come from the adapter's own
            status, _, _ = await bot.press(f"act:{repair.token}", ref, message={"type": "message", "text": "card"})
            assert status == 200
            await bot.api.wait_for("chat.update", 2)
            message = bot.api.only_message()
            assert "www: needs repair" in message.block_text()
            assert "repair-store on iis01: done" in message.block_text()
            assert message.button_values() == [f"act:{verify.token}"]
            assert json.dumps(message.blocks).count("Missing stored keyset") == 1

    asyncio.run(scenario())
