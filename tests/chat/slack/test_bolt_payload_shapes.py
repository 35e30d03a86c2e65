"""Signed bodies of every payload type Bolt tells apart, with fields of the wrong type: each one
certops cannot use gets 400 before Bolt sees it, each one for a feature certops lacks an empty 200,
and Bolt never fails on one that gets through (no 500, no traceback in the log)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.chat.slack import for_certops, parse_body, signed_for_bolt
from bot.web import Malformed
from tests.chat.slack.harness import Bot, command_body, running_bot
from tests.fakes.hostile_requests import mutate, slack_body, slack_payloads
from tests.fakes.slack_api import SIGNING_SECRET

MUTATIONS_PER_TYPE = 400  # each costs Bolt a fraction of a millisecond
MUTATIONS_FOR_LISTENERS = 40  # a command or a press runs certops's own code: about 12 ms
OVER_HTTP = 20
SEED = 20251202


def failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Log records that show something broke: a traceback or an ERROR."""
    return [
        f"{record.name}: {record.getMessage()[:200]}"
        for record in caplog.get_records("call")
        if record.exc_info is not None or record.levelno >= logging.ERROR
    ]


def long_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Records of more than one short line (Bolt's unhandled-request warning is a dozen)."""
    return [
        record.getMessage()[:200]
        for record in caplog.get_records("call")
        if len(record.getMessage()) > 300 or "\n" in record.getMessage()
    ]


async def send(bot: Bot, body: bytes, content_type: bytes) -> tuple[int, str]:
    status, text, _ = await bot.send(body.decode(), content_type=content_type.decode())
    return status, text


async def dispatch_straight_to_bolt(bot: Bot, data: dict[str, Any]) -> int:
    """What Bolt answers a checked body, as the adapter hands it over, even one the adapter keeps
    from it (no listener of ours): Bolt's whole dispatch, unhandled-request log line included."""
    timestamp = str(int(time.time()))
    body, signature = signed_for_bolt(data, timestamp, SIGNING_SECRET.encode())
    headers: dict[str, Any] = {
        "content-type": "application/json",
        "x-slack-request-timestamp": timestamp,
        "x-slack-signature": signature,
    }
    response = await bot.adapter.app.async_dispatch(AsyncBoltRequest(body=body, headers=headers))
    return response.status


def test_a_signed_view_submission_whose_callback_id_is_not_a_string_gets_400_and_one_refusal_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    lines: list[str] = []

    async def scenario() -> list[tuple[int, str]]:
        answers = []
        async with running_bot(tmp_path) as bot:
            for callback_id in (5, {}, [], True, 1.5):
                payload = {
                    "type": "view_submission",
                    "user": {"id": "U"},
                    "view": {"state": {}, "callback_id": callback_id},
                }
                caplog.clear()
                answers.append(await send(bot, *slack_body("view_submission", payload)))
                records = caplog.get_records("call")
                assert len(records) <= 1, failures(caplog)  # after the first, the throttle holds the line back
                assert all(record.name == "certops.web.refusals" and record.exc_info is None for record in records)
                lines.extend(record.getMessage() for record in records)
            await asyncio.sleep(0.1)
            assert bot.new_calls() == []
        return answers

    assert asyncio.run(scenario()) == [(400, json.dumps({"error": "malformed request"}))] * 5
    assert lines == ["refused POST /slack/events from 127.0.0.1: callback_id is not a string (HTTP 400)"]


def test_a_view_without_a_type_is_refused_before_bolt_reads_it() -> None:
    payload = {"type": "view_submission", "user": {"id": "U"}, "view": {"callback_id": "modal"}}
    with pytest.raises(Malformed) as raised:
        parse_body(*_as_text(slack_body("view_submission", payload)))
    assert raised.value.reason == "a view without a string type"


def _as_text(body: tuple[bytes, bytes]) -> tuple[bytes, str]:
    return body[0], body[1].decode()


def test_every_payload_type_bolt_knows_passes_the_check_as_slack_sends_it() -> None:
    for name, payload in slack_payloads().items():
        _, data = parse_body(*_as_text(slack_body(name, payload)))
        assert data == payload, name


def test_thousands_of_mutated_payloads_of_every_type_get_200_or_400_and_bolt_never_fails_on_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A fuzz of the class: every field Bolt or certops reads, at every depth, given a value of
    each other JSON type (or dropped, or added where it was not). The first of each type go to the
    bot over HTTP, signed as Slack signs; every one that passes the check also goes straight into
    the adapter's Bolt app, as the adapter would hand it over, listener or none."""
    caplog.set_level(logging.INFO)
    rng = random.Random(SEED)  # noqa: S311 - a reproducible fuzz, not secrecy
    statuses: dict[int, int] = {}
    bolt_statuses: dict[int, int] = {}

    async def scenario() -> None:
        async with running_bot(tmp_path) as bot:
            caplog.clear()
            started = time.monotonic()
            for name, payload in slack_payloads(bot.api.response_url()).items():
                for attempt in range(MUTATIONS_FOR_LISTENERS if for_certops(payload) else MUTATIONS_PER_TYPE):
                    mutated = mutate(payload, rng)
                    for _ in range(rng.randrange(2)):
                        mutated = mutate(mutated, rng)
                    body, content_type = slack_body(name, mutated)
                    if attempt < OVER_HTTP:
                        caplog.clear()
                        status, _ = await send(bot, body, content_type)
                        statuses[status] = statuses.get(status, 0) + 1
                        assert status in (200, 400), (name, mutated, status)
                        assert long_lines(caplog) == [], (name, mutated)
                    try:
                        _, data = parse_body(body, content_type.decode())
                    except Malformed:
                        continue
                    bolt_status = await dispatch_straight_to_bolt(bot, data)
                    bolt_statuses[bolt_status] = bolt_statuses.get(bolt_status, 0) + 1
                    assert bolt_status != 500, (name, mutated)
                    assert failures(caplog) == [], (name, mutated)
            await asyncio.sleep(0.2)  # listeners run after the ack: a failure in one is logged by now
            assert failures(caplog) == []
            assert time.monotonic() - started < 30
            # and the bot still answers a real command
            status, text, _ = await bot.send(command_body("help", user="U0ALICE", response_url=bot.api.response_url()))
            assert status == 200
            assert "certops commands" in text

    asyncio.run(scenario())
    assert sum(statuses.values()) == OVER_HTTP * len(slack_payloads())
    assert statuses.get(400, 0) > 100  # the mutations do hit what is checked
    assert sum(bolt_statuses.values()) > 3000  # and many pass the check, for Bolt to dispatch without a failure


def test_a_signed_request_for_a_feature_certops_lacks_gets_an_empty_200_and_one_short_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    kinds = [name for name in slack_payloads() if not name.startswith(("block_actions", "url_verification", "/ssl"))]

    line = "refused POST /slack/events from 127.0.0.1: a request certops has no listener for (HTTP 200)"
    lines: list[str] = []

    async def scenario() -> dict[str, tuple[int, str]]:
        answers = {}
        async with running_bot(tmp_path) as bot:
            for name in kinds:
                caplog.clear()
                answers[name] = await send(bot, *slack_body(name, slack_payloads()[name]))
                records = caplog.get_records("call")
                assert len(records) <= 1, [r.getMessage() for r in records]  # one, or held back by the throttle
                lines.extend(record.getMessage() for record in records)
            await asyncio.sleep(0.1)
            assert bot.new_calls() == []  # no listener ran: not even Bolt's auth.test
        return answers

    assert asyncio.run(scenario()) == dict.fromkeys(kinds, (200, ""))
    assert lines[0] == line
    assert set(lines) == {line}
    assert len(kinds) >= 15


def test_a_slash_command_with_the_word_payload_in_it_reaches_the_command_listener(tmp_path: Path) -> None:
    """Bolt's own parse takes any form body with "payload" in it for an interactive payload."""

    async def scenario() -> str:
        async with running_bot(tmp_path) as bot:
            status, text, _ = await bot.command("status payload-api")
            assert status == 200
            return text

    assert 'No site named \\"payload-api\\"' in asyncio.run(scenario())


def test_a_form_field_that_is_not_utf8_is_malformed_not_replaced() -> None:
    body = urlencode({"command": "/ssl", "text": "x"}).encode() + b"%ED%A0%80"  # an encoded lone surrogate
    with pytest.raises(Malformed) as raised:
        parse_body(body, "application/x-www-form-urlencoded")
    assert raised.value.reason == "a form field that is not UTF-8"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"type": "interactive_message", "callback_id": "c"}, "a button press without actions"),
        ({"type": "workflow_step_edit", "callback_id": "c"}, "a workflow step payload without its step"),
        ({"type": "event_callback", "event": None}, "event is not an object"),
        ({"type": "event_callback", "event": {"type": "function_executed", "function": None}},
         "function is not an object"),
        ({"type": "block_suggestion", "action_id": 5}, "action_id is not a string"),
        ({"type": "view_closed", "view": {"type": "modal", "callback_id": "c", "app_installed_team_id": 5}},
         "app_installed_team_id is not a string"),
        ({"type": "shortcut", "authorizations": [{"team_id": {"id": "T"}}]}, "team_id is not a string"),
        ({"type": "shortcut", "function_data": {"execution_id": 5}}, "execution_id is not a string"),
        ({"type": "url_verification", "challenge": {"a": 1}}, "challenge is not a string"),
        ({"type": "block_actions", "user": {"id": "U"}, "actions": [{"action_id": "certops_btn_0"}],
          "message": {"blocks": [{"type": "actions", "elements": [{"value": ["x"]}]}]}},
         "a button value that is not a string"),
    ],
)  # fmt: skip
def test_the_body_parser_refuses_each_shape_bolt_would_trip_on(payload: dict[str, Any], reason: str) -> None:
    with pytest.raises(Malformed) as raised:
        parse_body(urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded")
    assert raised.value.reason == reason
