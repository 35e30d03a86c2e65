"""The outbox worker delivering to LINE: one retry key per row however often it is retried, a 409
as proof that an earlier attempt got through, minor card edits not pushed, and the quota rule."""

from __future__ import annotations

import asyncio

import pytest

from bot.chat.line import QuotaRule
from bot.core.model import MessageKind
from bot.outbox import OutboxWorker
from tests.chat.destinations import set_env, slack_adapter
from tests.chat.line.test_line_webhook import words
from tests.fakes.line_api import LineApiStandIn
from tests.fakes.slack_api import SlackAPI
from tests.outbox.harness import Clock, card, deliver_all, line_outbox, message, render, wait_until


def test_every_retry_of_a_row_reuses_its_retry_key_and_a_409_counts_as_delivered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_env(monkeypatch)

    async def scenario() -> None:
        clock = Clock()
        async with LineApiStandIn() as api, line_outbox(api) as (adapter, store):
            api.fail(503, times=2)
            api.fail(503, accept=True, times=1)  # the third attempt gets through, its answer does not
            store.enqueue([card("INC-0001", "www down", platform="line")], clock())
            [row] = store.pending("line")
            worker = OutboxWorker(store, {"line": adapter}, render, clock=clock)
            await deliver_all(worker, clock, "line")
            attempts = api.push_attempts()
            assert [c.status for c in attempts] == [503, 503, 503, 409]
            assert {c.headers["X-Line-Retry-Key"] for c in attempts} == {row.retry_key}
            assert len(api.delivered) == 1  # LINE delivered it once
            assert store.sent_titles() == ["www down"]
            assert store.card_ref("INC-0001", "line") == row.retry_key  # LINE's id was in the lost answer

    asyncio.run(scenario())


def test_a_minor_card_edit_is_edited_on_slack_but_not_pushed_to_line(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch)

    async def scenario() -> None:
        clock = Clock()
        async with SlackAPI() as slack_api, LineApiStandIn() as line_api, line_outbox(line_api) as (line, store):
            slack = slack_adapter(slack_api)
            try:
                worker = OutboxWorker(store, {"slack": slack, "line": line}, render, clock=clock, poll=0.01)
                worker.start()
                for platform in ("slack", "line"):
                    store.enqueue([card("INC-0001", f"{platform}: open", platform=platform)], clock())
                worker.wake()
                await wait_until(lambda: len(store.sent) == 2)
                for platform in ("slack", "line"):
                    store.enqueue(
                        [card("INC-0001", f"{platform}: rechecked", notable=False, platform=platform)], clock()
                    )
                worker.wake()
                await wait_until(lambda: len(store.sent) == 4)
                for platform in ("slack", "line"):
                    store.enqueue([card("INC-0001", f"{platform}: resolved", platform=platform)], clock())
                worker.wake()
                await wait_until(lambda: len(store.sent) == 6)
                await worker.stop()
            finally:
                await slack.stop()
            assert len(slack_api.accepted("chat.update")) == 2  # Slack shows every change
            pushed = [words(c) for c in line_api.pushes]
            assert len(pushed) == 2  # LINE: the card and its resolution, not the recheck
            assert "line: open" in pushed[0]
            assert "line: resolved" in pushed[1]

    asyncio.run(scenario())


def test_a_line_outage_does_not_hold_back_slack(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch)

    async def scenario() -> None:
        clock = Clock()
        async with SlackAPI() as slack_api, LineApiStandIn() as line_api, line_outbox(line_api) as (line, store):
            line_api.fail(503)  # until recover()
            slack = slack_adapter(slack_api)
            try:
                worker = OutboxWorker(store, {"slack": slack, "line": line}, render, clock=clock, poll=0.01)
                worker.start()
                store.enqueue([message(MessageKind.NOTICE, "to line", platform="line")], clock())
                store.enqueue([message(MessageKind.NOTICE, "to slack")], clock())
                worker.wake()
                await wait_until(lambda: store.sent)
                assert store.sent_titles() == ["to slack"]
                assert store.state("to line") == "pending"
                await worker.stop()
            finally:
                await slack.stop()

    asyncio.run(scenario())


def test_while_lines_quota_is_low_rows_are_marked_sent_when_handed_to_the_summary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_env(monkeypatch)

    async def scenario() -> None:
        clock = Clock()
        async with LineApiStandIn() as api:
            api.used = api.quota_limit - 5
            async with line_outbox(api, quota=QuotaRule(window=30.0)) as (adapter, store):
                store.enqueue(
                    [
                        card("INC-0001", "www down", platform="line"),
                        message(MessageKind.NOTICE, "iis01 healed", platform="line"),
                    ],
                    clock(),
                )
                await deliver_all(OutboxWorker(store, {"line": adapter}, render, clock=clock), clock, "line")
                assert store.sent_titles() == ["www down", "iis01 healed"]
                assert api.pushes == []  # held in the summary's window
            # the adapter's stop() sends what it held, as one push
            [summary] = api.pushes
            assert "www down" in words(summary)
            assert "iis01 healed" in words(summary)

    asyncio.run(scenario())


def test_a_used_up_quota_fails_the_rows_for_good_with_an_audit_line(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch)

    async def scenario() -> None:
        clock = Clock()
        async with LineApiStandIn() as api, line_outbox(api) as (adapter, store):
            api.used = api.quota_limit
            store.enqueue([message(MessageKind.NOTICE, "iis01 healed", platform="line")], clock())
            worker = OutboxWorker(store, {"line": adapter}, render, clock=clock)
            await deliver_all(worker, clock, "line")
            assert store.failed == [(store.seq("iis01 healed"), "LINE monthly message quota is used up")]
            assert worker.permanent_errors() == {"line": "LINE monthly message quota is used up"}
            assert [(a.event, a.outcome) for a in store.audit_log()] == [("line-push", "skipped")]
            assert api.push_attempts() == []

    asyncio.run(scenario())
