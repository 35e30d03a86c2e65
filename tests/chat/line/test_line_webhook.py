"""End to end over real HTTP: signed LINE webhooks into the adapter's route, answers into the LINE
API stand-in. Signature checks stay on in every test."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from bot.chat.line import QuotaRule
from commands.model import Button, Field, Outcome, Reply, Request, Tone
from tests.chat.line.harness import (
    APPROVER,
    BYSTANDER,
    CHANNEL_SECRET,
    GROUP,
    ROOM,
    SECOND_APPROVER,
    LineBot,
    line_bot,
    postback_event,
    sign,
    site_text,
    source,
    text_event,
)
from tests.fakes.line_api import ACCESS_TOKEN, Call
from tests.fakes.tls import Lab


def words(call: Call) -> str:
    """Every text a user would see in the call's messages (text, Flex texts, alt texts, labels)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("text", "altText", "label") and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(call.json.get("messages", []))
    return "\n".join(found)


def audit_events(bot: LineBot) -> list[tuple[str, str]]:
    return [(row["event"], row["outcome"]) for row in bot.audit()]


# commands ----------------------------------------------------------------------------------------


def test_a_signed_ssl_help_message_is_answered_with_a_free_reply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            event = text_event("/ssl help", source(APPROVER, group=GROUP))
            assert await bot.deliver(event) == 200

            [reply] = bot.api.replies
            assert reply.json["replyToken"] == event["replyToken"]
            assert reply.headers["Authorization"] == "Bearer test-line-access-token"
            [message] = reply.json["messages"]
            assert message["type"] == "flex"
            assert "certops commands" in words(reply)
            assert "/ssl status" in words(reply)
            assert bot.api.pushes == []
            assert ("command", "received") in audit_events(bot)

    asyncio.run(scenario())


def test_a_status_command_replies_at_once_and_pushes_the_slow_result_to_the_chat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lab: Lab
) -> None:
    endpoint = lab.serve("localhost", days_left=50)

    async def scenario() -> None:
        sites = site_text("www", endpoint.port, lab.ca_file)
        async with line_bot(tmp_path, monkeypatch, sites=sites, reply_grace=0) as bot:
            await bot.deliver(text_event("/ssl status www", source(APPROVER, room=ROOM)))

            [reply] = bot.api.replies
            assert "www: probing now" in words(reply)
            [push] = bot.api.pushes
            assert push.json["to"] == ROOM
            assert "www: OK" in words(push)
            assert push.headers["X-Line-Retry-Key"]
            # the quota was read before the push
            paths = [c.path for c in bot.api.calls]
            assert paths.index("/v2/bot/message/quota") < paths.index("/v2/bot/message/push")

    asyncio.run(scenario())


def test_a_follow_up_that_finishes_within_the_grace_goes_out_in_the_free_reply_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lab: Lab
) -> None:
    endpoint = lab.serve("localhost")

    async def scenario() -> None:
        sites = site_text("www", endpoint.port, lab.ca_file)
        async with line_bot(tmp_path, monkeypatch, sites=sites, reply_grace=10) as bot:
            await bot.deliver(text_event("/ssl check www"))

            [reply] = bot.api.replies
            assert "www: OK" in words(reply)
            assert "Checking" not in words(reply)
            assert bot.api.pushes == []

    asyncio.run(scenario())


def test_a_one_to_one_command_pushes_its_result_to_that_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lab: Lab
) -> None:
    endpoint = lab.serve("localhost")

    async def scenario() -> None:
        sites = site_text("www", endpoint.port, lab.ca_file)
        async with line_bot(tmp_path, monkeypatch, sites=sites) as bot:
            await bot.deliver(text_event("/SSL  check www", source(BYSTANDER)))

            assert "Checking www" in words(bot.api.replies[0])
            [push] = bot.api.pushes
            assert push.json["to"] == BYSTANDER

    asyncio.run(scenario())


def test_messages_that_are_not_ssl_commands_are_ignored_and_not_even_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            events = [
                text_event(text, source(APPROVER, group=GROUP))
                for text in ("hello team", "/sslstatus", "ssl status", "please /ssl help")
            ]
            for event in events:
                assert await bot.deliver(event) == 200
            assert bot.api.calls == []
            assert bot.audit() == []
            # not remembered: each id is still new to the store
            assert all(bot.core.store.first_time("line", event["webhookEventId"]) for event in events)

    asyncio.run(scenario())


def test_the_webhook_is_answered_before_the_command_is_done(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            release = asyncio.Event()

            async def slow_command(request: Request) -> Outcome:
                await release.wait()
                return Outcome(Reply(f"done: {request.text}"))

            monkeypatch.setattr(bot.core.dispatcher, "command", slow_command)
            assert await bot.deliver(text_event("/ssl status"), settle=False) == 200
            assert bot.api.replies == []  # LINE has its 200; the work is still in hand
            release.set()
            await bot.settle()
            assert "done: status" in words(bot.api.replies[0])

    asyncio.run(scenario())


def test_an_empty_verification_webhook_from_the_console_gets_200(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            assert await bot.deliver() == 200
            assert bot.api.calls == []

    asyncio.run(scenario())


# refusals ----------------------------------------------------------------------------------------


def test_an_unsigned_webhook_is_refused_and_leaves_no_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            body = json.dumps({"destination": "U", "events": [text_event("/ssl help")]}).encode()
            assert await bot.post(body, None) == 401
            assert await bot.post(body, "") == 401
            await bot.settle()
            assert bot.api.calls == []
            assert bot.audit() == []

    asyncio.run(scenario())


def test_a_wrongly_signed_webhook_is_refused_and_leaves_no_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            event = text_event("/ssl help")
            body = json.dumps({"destination": "U", "events": [event]}).encode()
            other = json.dumps({"destination": "U", "events": []}).encode()
            assert await bot.post(body, sign(body, "not-the-channel-secret")) == 401
            assert await bot.post(body, sign(other)) == 401  # a valid signature of another body
            assert await bot.post(body, "garbage") == 401
            await bot.settle()
            assert bot.api.calls == []
            assert bot.audit() == []
            # the refused event id was not burnt: the genuine delivery still works
            assert await bot.deliver(event) == 200
            assert len(bot.api.replies) == 1

    asyncio.run(scenario())


def test_a_replayed_webhook_event_id_does_nothing_the_second_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            event = text_event("/ssl help", source(APPROVER, group=GROUP))
            assert await bot.deliver(event) == 200
            replayed = {**event, "replyToken": "a-fresh-token", "deliveryContext": {"isRedelivery": True}}
            assert await bot.deliver(replayed) == 200  # LINE must not retry it, so: 200
            assert len(bot.api.replies) == 1
            assert [e for e, _ in audit_events(bot)] == ["command"]

    asyncio.run(scenario())


def test_a_signed_event_older_than_a_day_is_ignored_even_with_a_new_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            event = text_event("/ssl help", source(APPROVER, group=GROUP))
            event["timestamp"] -= 2 * 24 * 3600 * 1000  # captured two days ago, replayed now
            assert await bot.deliver(event) == 200
            assert bot.api.replies == []
            assert audit_events(bot) == []

    asyncio.run(scenario())


# button presses ----------------------------------------------------------------------------------


def test_an_approvers_press_is_answered_by_reply_and_the_action_runs_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            request = bot.request()
            await bot.deliver(postback_event(f"act:{request.token}", source(APPROVER, group=GROUP)))

            [reply] = bot.api.replies
            assert "Running repair-store on iis01" in words(reply)
            [push] = bot.api.pushes  # the run's outcome (iis01 is not configured, so: failed)
            assert push.json["to"] == GROUP
            assert "repair-store on iis01 failed" in words(push)
            assert ("approve", "approved") in audit_events(bot)
            assert ("run", "failed") in audit_events(bot)

    asyncio.run(scenario())


def test_a_group_press_without_a_user_id_gets_a_reply_explaining_one_to_one_approval_and_runs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            request = bot.request()
            await bot.deliver(postback_event(f"act:{request.token}", source(None, group=GROUP)))

            [reply] = bot.api.replies
            assert "approve in a 1:1 chat with the bot" in words(reply)
            assert bot.api.pushes == []
            assert bot.core.store.request(request.token).state == "pending"  # type: ignore[union-attr]
            assert audit_events(bot) == [("press", "refused")]

    asyncio.run(scenario())


def test_a_bystanders_press_is_refused_politely_by_reply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            request = bot.request()
            await bot.deliver(postback_event(f"act:{request.token}", source(BYSTANDER, group=GROUP)))

            assert "not on the approver list" in words(bot.api.replies[0])
            assert bot.api.pushes == []
            assert bot.core.store.request(request.token).state == "pending"  # type: ignore[union-attr]

    asyncio.run(scenario())


def test_an_expired_button_is_refused_by_reply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            request = bot.request(ttl=-1, site="www")
            await bot.deliver(postback_event(f"act:{request.token}", source(APPROVER, group=GROUP)))

            assert "This button expired" in words(bot.api.replies[0])
            assert "/ssl heal www" in words(bot.api.replies[0])
            assert bot.api.pushes == []
            assert ("press", "refused") in audit_events(bot)
            assert ("approve", "approved") not in audit_events(bot)

    asyncio.run(scenario())


def test_a_double_press_runs_the_action_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            request = bot.request()
            first = postback_event(f"act:{request.token}", source(APPROVER, group=GROUP))
            second = postback_event(f"act:{request.token}", source(SECOND_APPROVER, group=GROUP))
            await bot.deliver(first, second)  # both in one delivery, as a quick double tap arrives

            replies = [words(r) for r in bot.api.replies]
            assert len(replies) == 2
            assert "Running repair-store" in replies[0]
            assert "already" in replies[1]
            assert [e for e in audit_events(bot) if e[0] == "run"] == [("run", "failed")]
            assert len(bot.api.pushes) == 1

    asyncio.run(scenario())


def test_a_button_with_a_question_asks_it_first_in_a_free_reply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            request = bot.request()
            data = f"ask:act:{request.token}|Repair store on iis01?"
            await bot.deliver(postback_event(data, source(APPROVER, group=GROUP)))

            [ask] = bot.api.replies
            [template] = ask.json["messages"]
            assert template["template"]["type"] == "confirm"
            assert template["template"]["text"] == "Repair store on iis01?"
            yes, cancel = template["template"]["actions"]
            assert yes["data"] == f"act:{request.token}"
            assert bot.core.store.request(request.token).state == "pending"  # type: ignore[union-attr]

            await bot.deliver(postback_event(cancel["data"], source(APPROVER, group=GROUP)))
            assert len(bot.api.calls) == 1  # Cancel does nothing at all
            await bot.deliver(postback_event(yes["data"], source(APPROVER, group=GROUP)))
            assert "Running repair-store" in words(bot.api.replies[1])

    asyncio.run(scenario())


def test_a_private_refusal_is_never_pushed_to_the_group_when_its_reply_token_has_expired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            request = bot.request()
            event = postback_event(f"act:{request.token}", source(BYSTANDER, group=GROUP))
            event["replyToken"] = "expired-token"
            await bot.deliver(event)

            assert [c.status for c in bot.api.sent()] == [400]  # the refused reply, and nothing else
            assert bot.api.pushes == []

    asyncio.run(scenario())


def test_a_shared_answer_whose_reply_token_has_expired_is_pushed_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            request = bot.request()
            event = postback_event(f"act:{request.token}", source(APPROVER, group=GROUP))
            event["replyToken"] = "expired-token"
            await bot.deliver(event)

            pushed = [words(p) for p in bot.api.pushes]
            assert any("Running repair-store" in p for p in pushed)
            assert any("failed" in p for p in pushed)

    asyncio.run(scenario())


# the incident destination and the quota ----------------------------------------------------------


def test_post_pushes_a_flex_card_with_postback_buttons_to_the_configured_chat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            request = bot.request()
            card = Reply(
                "www.example.com: TLS handshake reset at origin",
                Tone.CRITICAL,
                ("CDN edge still answering (cache HIT, Age 5400).",),
                (Field("Served before", "3A…F1, expires in 2 days"),),
                (Button("Repair store", f"act:{request.token}", "primary"),),
                incident_id="INC-0001",
            )
            ref = await bot.adapter.post(card)
            await bot.adapter.update(ref or "", Reply("INC-0001 resolved", Tone.OK))
            await bot.settle()

            first, second = bot.api.pushes
            assert ref is not None
            assert ref.isdigit()  # LINE's id of the sent message is the reference
            assert first.json["to"] == GROUP
            [flex] = first.json["messages"]
            assert flex["altText"].startswith("www.example.com: TLS handshake reset at origin · INC-0001")
            assert flex["contents"]["header"]["backgroundColor"] == "#C62828"
            [button] = flex["contents"]["footer"]["contents"]
            assert button["action"] == {
                "type": "postback",
                "label": "Repair store",
                "data": f"act:{request.token}",
                "displayText": "Repair store",
            }
            assert "INC-0001 resolved" in words(second)

    asyncio.run(scenario())


def test_a_failed_push_is_retried_with_the_same_retry_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            bot.api.fail_pushes = 1
            assert await bot.adapter.post(Reply("hello")) is not None
            attempts = [c for c in bot.api.calls if c.path == "/v2/bot/message/push"]
            assert [c.status for c in attempts] == [500, 200]
            assert attempts[0].headers["X-Line-Retry-Key"] == attempts[1].headers["X-Line-Retry-Key"]

    asyncio.run(scenario())


def test_low_quota_collapses_pending_pushes_into_one_summary_push(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        quota = QuotaRule(min_left=20, min_fraction=0.1, window=0.5)
        async with line_bot(tmp_path, monkeypatch, quota=quota) as bot:
            bot.api.quota_limit, bot.api.used = 200, 185  # 15 left: low
            request = bot.request()
            for event_text in ("INC-0001 opened", "INC-0002 opened", "INC-0001 resolved"):
                assert await bot.adapter.post(Reply(event_text)) is None  # held for the summary
            button = Button("Repair store", f"act:{request.token}")
            await bot.adapter.post(Reply("www needs a repair", buttons=(button,)))
            assert bot.api.pushes == []
            await bot.settle()

            [push] = bot.api.pushes
            assert bot.api.used == 186  # four updates, one quota unit
            text, card = push.json["messages"]
            assert text["text"].startswith("4 updates in one message: the LINE message quota is low (15 left")
            for event_text in ("INC-0001 opened", "INC-0002 opened", "INC-0001 resolved", "www needs a repair"):
                assert event_text in text["text"]
            assert card["contents"]["footer"]["contents"][0]["action"]["data"] == f"act:{request.token}"

    asyncio.run(scenario())


def test_with_enough_quota_every_push_goes_out_on_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            bot.api.quota_limit, bot.api.used = 200, 100
            for n in range(3):
                assert await bot.adapter.post(Reply(f"update {n}")) is not None
            assert len(bot.api.pushes) == 3

    asyncio.run(scenario())


def test_an_unlimited_plan_never_collapses_pushes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            bot.api.quota_type = "none"
            bot.api.used = 10_000
            for n in range(2):
                assert await bot.adapter.post(Reply(f"update {n}")) is not None
            assert len(bot.api.pushes) == 2
            assert "/v2/bot/message/quota/consumption" not in [c.path for c in bot.api.calls]

    asyncio.run(scenario())


def test_a_used_up_quota_skips_the_push_and_says_so_in_the_audit_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            bot.api.used = bot.api.quota_limit
            assert await bot.adapter.post(Reply("INC-0003 opened")) is None
            assert [c for c in bot.api.calls if c.path == "/v2/bot/message/push"] == []
            [entry] = bot.audit()
            assert (entry["event"], entry["outcome"]) == ("line-push", "skipped")
            assert "INC-0003 opened" in entry["detail"]

    asyncio.run(scenario())


def test_stopping_sends_held_updates_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch, quota=QuotaRule(window=3600)) as bot:
            bot.api.used = 195
            await bot.adapter.post(Reply("first"))
            await bot.adapter.post(Reply("second"))
            await bot.adapter.stop()
            [push] = bot.api.pushes
            assert "first" in words(push)
            assert "second" in words(push)

    asyncio.run(scenario())


def test_the_log_names_the_ids_the_config_needs_when_the_bot_joins_a_group_or_gains_a_friend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            join = {**text_event("", source(None, group=GROUP)), "type": "join"}
            follow = {**text_event("", source(BYSTANDER)), "type": "follow", "follow": {"isUnblocked": False}}
            for event in (join, follow):
                del event["message"]
            with caplog.at_level("INFO", logger="certops.chat.line"):
                assert await bot.deliver(join, follow) == 200
            assert f'set [chat.line] to = "{GROUP}"' in caplog.text
            assert f'add "line:{BYSTANDER}" to [policy]' in caplog.text
            assert bot.api.calls == []

    asyncio.run(scenario())


def test_two_presses_delivered_at_the_same_moment_run_the_action_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            request = bot.request()
            presses = [
                postback_event(f"act:{request.token}", source(user, group=GROUP))
                for user in (APPROVER, SECOND_APPROVER)
            ]
            statuses = await asyncio.gather(*(bot.deliver(p, settle=False) for p in presses))
            assert statuses == [200, 200]
            await bot.settle()

            replies = sorted(words(r) for r in bot.api.replies)
            assert len(replies) == 2
            assert sum("Running repair-store" in r for r in replies) == 1
            assert sum("already" in r for r in replies) == 1
            events = audit_events(bot)
            assert events.count(("approve", "approved")) == 1
            assert [e for e in events if e[0] == "run"] == [("run", "failed")]
            assert len(bot.api.pushes) == 1

    asyncio.run(scenario())


def test_a_result_that_arrives_after_stop_is_dropped_with_a_log_line_not_a_new_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            await bot.adapter.stop()
            assert await bot.adapter.post(Reply("late news")) is None
            assert bot.api.calls == []
            assert "not pushing late news" in caplog.text

    asyncio.run(scenario())


def test_secrets_never_reach_the_log_even_when_line_refuses_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with line_bot(tmp_path, monkeypatch) as bot:
            bot.api.access_token = "the-token-line-expects-now"  # ours was revoked
            with caplog.at_level("DEBUG"):
                assert await bot.adapter.post(Reply("INC-0004 opened")) is None
                await bot.deliver(text_event("/ssl help"))
                body = json.dumps({"destination": "U", "events": []}).encode()
                assert await bot.post(body, sign(body, "wrong")) == 401
            assert "HTTP 401" in caplog.text
            for secret in (ACCESS_TOKEN, CHANNEL_SECRET):
                assert secret not in caplog.text

    asyncio.run(scenario())
