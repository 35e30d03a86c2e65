"""The outbox worker delivering to Slack: cards posted once and then edited, edits collapsed to
the newest, delivery in order through outages and rate limits, permanent failures recorded and
passed by, and card references that outlive a restart."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bot.chat.slack import SlackAdapter
from bot.core.model import MessageKind
from bot.outbox import OutboxWorker, Renderer
from tests.chat.destinations import SLACK_CHANNEL, set_env
from tests.fakes.slack_api import SlackAPI, text_of
from tests.outbox.harness import (
    Clock,
    Recorded,
    card,
    deliver_all,
    message,
    render,
    render_async,
    slack_outbox,
    wait_until,
)


def titles(api: SlackAPI, method: str) -> list[str]:
    """The card titles Slack accepted through `method`, in order (the header block's text)."""
    return [text_of(c.body["blocks"]).splitlines()[0].split(" ", 1)[1] for c in api.accepted(method)]


@pytest.mark.parametrize("renderer", [render, render_async], ids=["sync renderer", "async renderer"])
def test_a_card_then_two_edits_is_one_post_and_then_one_update_with_the_newest_content(
    monkeypatch: pytest.MonkeyPatch, renderer: Renderer
) -> None:
    set_env(monkeypatch)

    async def scenario() -> None:
        clock = Clock()
        async with SlackAPI() as api, slack_outbox(api) as (adapter, store):
            worker = OutboxWorker(store, {"slack": adapter}, renderer, clock=clock, poll=0.01)
            worker.start()
            store.enqueue([card("INC-0001", "v1 open")], clock())
            worker.wake()
            await wait_until(lambda: store.sent)
            store.enqueue([card("INC-0001", "v2 acked"), card("INC-0001", "v3 resolved")], clock())
            worker.wake()
            await wait_until(lambda: len(store.sent) == 2)
            await worker.stop()
            assert titles(api, "chat.postMessage") == ["v1 open"]
            assert titles(api, "chat.update") == ["v3 resolved"]
            assert [store.state(t) for t in ("v1 open", "v2 acked", "v3 resolved")] == [
                "sent",
                "superseded",
                "sent",
            ]
            assert store.card_ref("INC-0001", "slack") == f"{SLACK_CHANNEL}:{api.only_message().ts}"
            assert "v3 resolved" in api.only_message().block_text()

    asyncio.run(scenario())


def test_edits_queued_before_the_card_went_out_make_one_post_with_the_newest_content(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_env(monkeypatch)

    async def scenario() -> None:
        clock = Clock()
        async with SlackAPI() as api, slack_outbox(api) as (adapter, store):
            store.enqueue(
                [card("INC-0001", "v1"), message(MessageKind.NOTICE, "a notice"), card("INC-0001", "v2")], clock()
            )
            await deliver_all(OutboxWorker(store, {"slack": adapter}, render, clock=clock), clock)
            # the card keeps its place in the line, with the newest content; nothing older follows it
            assert titles(api, "chat.postMessage") == ["v2", "a notice"]
            assert api.calls_to("chat.update") == []
            assert store.state("v1") == "superseded"

    asyncio.run(scenario())


def test_after_a_five_minute_outage_and_a_rate_limit_every_message_is_delivered_once_and_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_env(monkeypatch)

    async def scenario() -> None:
        clock = Clock()
        async with SlackAPI(clock=clock.seconds) as api:
            api.fail(503, seconds=300)
            api.fail(429, error="ratelimited", retry_after=2, times=1)
            async with slack_outbox(api) as (adapter, store):
                worker = OutboxWorker(store, {"slack": adapter}, render, clock=clock, poll=0.005)
                worker.start()
                store.enqueue([card("INC-0001", "www down"), message(MessageKind.NOTICE, "iis01 healed")], clock())
                worker.wake()
                await wait_until(lambda: store.retries)  # the outage has begun
                store.enqueue([card("INC-0002", "api down")], clock())  # more news while Slack is down
                store.enqueue([message(MessageKind.RENOTIFY, "www still down", "INC-0001")], clock())
                store.enqueue([message(MessageKind.DIGEST, "daily digest")], clock())

                async def time_passes() -> None:
                    while True:
                        clock.advance(1)
                        worker.wake()
                        await asyncio.sleep(0.001)

                ticking = asyncio.create_task(time_passes())
                try:
                    await wait_until(lambda: len(store.sent) == 5, timeout=30)
                finally:
                    ticking.cancel()
                await worker.stop()

                assert titles(api, "chat.postMessage") == [
                    "www down",
                    "iis01 healed",
                    "api down",
                    "www still down",
                    "daily digest",
                ]
                assert len(api.messages) == 5  # once each
                www = store.card_ref("INC-0001", "slack")
                assert www is not None
                [renotify] = [c for c in api.accepted("chat.postMessage") if c.body.get("thread_ts")]
                assert renotify.body["thread_ts"] == www.split(":")[1]
                assert {c.status for c in api.calls if c.status != 200} == {503, 429}
                # only the head was retried while it held the line
                assert {seq for seq, _, _ in store.retries} == {store.seq("www down")}
                assert worker.failed_total == 0

    asyncio.run(scenario())


def test_a_rate_limited_row_is_not_tried_again_before_slacks_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch)

    async def scenario() -> None:
        clock = Clock()
        async with SlackAPI() as api:
            api.fail(429, error="ratelimited", retry_after=30, times=1)
            async with slack_outbox(api) as (adapter, store):
                worker = OutboxWorker(store, {"slack": adapter}, render, clock=clock)
                store.enqueue([message(MessageKind.NOTICE, "a notice")], clock())
                assert await worker.run_once("slack")
                [(_, error, next_at)] = store.retries
                assert error == "Slack chat.postMessage: ratelimited"
                assert next_at == clock() + dt.timedelta(seconds=30)  # not the 1 s backoff
                clock.advance(29)
                assert not await worker.run_once("slack")
                clock.advance(1)
                assert await worker.run_once("slack")
                assert store.sent_titles() == ["a notice"]

    asyncio.run(scenario())


def test_a_permanent_channel_not_found_fails_the_row_and_the_next_one_is_still_delivered(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    set_env(monkeypatch)

    async def scenario() -> None:
        clock = Clock()
        async with SlackAPI() as api:
            api.fail(error="channel_not_found", times=1)
            async with slack_outbox(api) as (adapter, store):
                worker = OutboxWorker(store, {"slack": adapter}, render, clock=clock)
                store.enqueue([card("INC-0001", "lost card"), message(MessageKind.NOTICE, "next notice")], clock())
                with caplog.at_level(logging.WARNING, logger="certops.outbox"):
                    await deliver_all(worker, clock)
                assert store.failed == [(store.seq("lost card"), "Slack chat.postMessage: channel_not_found")]
                assert store.sent_titles() == ["next notice"]
                assert store.retries == []  # not retried: no retry changes that answer
                assert worker.failed_total == 1
                assert store.failed_count() == 1
                assert worker.permanent_errors() == {"slack": "Slack chat.postMessage: channel_not_found"}
                assert store.card_ref("INC-0001", "slack") is None

    asyncio.run(scenario())
    [line] = [r for r in caplog.records if r.name == "certops.outbox"]
    assert "failed for good: Slack chat.postMessage: channel_not_found" in line.getMessage()
    assert line.exc_info is None  # one line, no traceback
    assert "xoxb-" not in caplog.text


def test_a_card_ref_saved_by_one_worker_is_edited_by_a_new_worker_on_the_same_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_env(monkeypatch)
    database = tmp_path / "certops.db"

    async def scenario() -> None:
        clock = Clock()
        async with SlackAPI() as api:
            async with slack_outbox(api, database) as (adapter, store):  # the first run
                store.enqueue([card("INC-0001", "open")], clock())
                await deliver_all(OutboxWorker(store, {"slack": adapter}, render, clock=clock), clock)
            async with slack_outbox(api, database) as (adapter, store):  # after a restart: all new
                store.enqueue([card("INC-0001", "resolved")], clock())
                await deliver_all(OutboxWorker(store, {"slack": adapter}, render, clock=clock), clock)
            assert titles(api, "chat.postMessage") == ["open"]
            assert titles(api, "chat.update") == ["resolved"]
            assert "resolved" in api.only_message().block_text()

    asyncio.run(scenario())


def test_a_deleted_card_gets_a_fresh_one_whose_ref_is_saved_for_the_next_edit(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch)

    async def scenario() -> None:
        clock = Clock()
        async with SlackAPI() as api, slack_outbox(api) as (adapter, store):
            worker = OutboxWorker(store, {"slack": adapter}, render, clock=clock)
            store.enqueue([card("INC-0001", "open")], clock())
            await deliver_all(worker, clock)
            first = store.card_ref("INC-0001", "slack")
            assert first is not None
            api.delete(*first.split(":"))  # someone deleted the card in Slack
            store.enqueue([card("INC-0001", "acked")], clock())
            await deliver_all(worker, clock)
            second = store.card_ref("INC-0001", "slack")
            assert second is not None
            assert second != first
            store.enqueue([card("INC-0001", "resolved")], clock())
            await deliver_all(worker, clock)
            assert titles(api, "chat.postMessage") == ["open", "acked"]
            assert titles(api, "chat.update") == ["resolved"]
            assert [c.body["ts"] for c in api.accepted("chat.update")] == [second.split(":")[1]]

    asyncio.run(scenario())


def test_a_row_the_renderer_has_nothing_for_is_settled_without_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch)

    async def scenario() -> None:
        clock = Clock()
        async with SlackAPI() as api, slack_outbox(api) as (adapter, store):
            gone = message(MessageKind.RENOTIFY, "gone", "INC-0009")
            gone.payload["gone"] = True
            store.enqueue([gone, message(MessageKind.NOTICE, "after")], clock())
            worker = OutboxWorker(store, {"slack": adapter}, render, clock=clock)
            await deliver_all(worker, clock)
            assert titles(api, "chat.postMessage") == ["after"]
            assert store.pending() == []
            assert worker.delivered_total == 1

    asyncio.run(scenario())


# a post whose answer was lost ------------------------------------------------------------------


@pytest.fixture
def short_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Slack tokens, and a delivery deadline short enough to lose an answer quickly."""
    set_env(monkeypatch)
    monkeypatch.setattr("bot.chat.slack.DELIVERY_TIMEOUT", 0.3)


@asynccontextmanager
async def outbox_now() -> AsyncIterator[tuple[SlackAPI, SlackAdapter, Recorded, OutboxWorker, Clock]]:
    """A worker on the Slack stand-in with a clock at the real time: Slack's ts (the stand-in's
    wall clock) is what the lookup after a lost answer compares the first attempt's time with."""
    clock = Clock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    async with SlackAPI() as api, slack_outbox(api) as (adapter, store):
        yield api, adapter, store, OutboxWorker(store, {"slack": adapter}, render, clock=clock), clock


async def lose_the_first_answer(api: SlackAPI, worker: OutboxWorker, store: Recorded, clock: Clock) -> None:
    """The first chat.postMessage lands, but its answer comes after the delivery's deadline (as
    when the replica dies mid-call): the attempt counts as failed and the row stays pending."""
    before = len(api.messages)
    api.fail(delay=1.0, answer_late=True, methods=["chat.postMessage"], times=1)
    await worker.run_once("slack")
    assert store.retries
    assert len(api.messages) == before + 1


def test_a_card_whose_post_landed_unanswered_is_found_by_its_tag_and_edited_instead_of_posted_twice(
    short_deadline: None,
) -> None:

    async def scenario() -> None:
        async with outbox_now() as (api, _adapter, store, worker, clock):
            store.enqueue([card("INC-0001", "open")], clock())
            await lose_the_first_answer(api, worker, store, clock)
            store.enqueue([card("INC-0001", "acked")], clock())  # news meanwhile: the retry carries it
            await deliver_all(worker, clock)

            [landed] = api.messages.values()
            assert landed.metadata == {"event_type": "certops_message", "event_payload": {"key": "card:INC-0001"}}
            assert len(api.accepted("chat.postMessage")) == 1
            [looked] = api.accepted("conversations.history")
            assert looked.body["include_all_metadata"] in (True, "true", "1")
            assert titles(api, "chat.update") == ["acked"]
            assert "acked" in landed.block_text()
            assert store.card_ref("INC-0001", "slack") == f"{SLACK_CHANNEL}:{landed.ts}"

    asyncio.run(scenario())


def test_a_re_notification_whose_reply_landed_unanswered_is_found_in_the_thread_and_not_sent_again(
    short_deadline: None,
) -> None:

    async def scenario() -> None:
        async with outbox_now() as (api, _adapter, store, worker, clock):
            store.enqueue([card("INC-0001", "open")], clock())
            await deliver_all(worker, clock)
            store.enqueue([message(MessageKind.RENOTIFY, "still down", "INC-0001")], clock())
            await lose_the_first_answer(api, worker, store, clock)
            await deliver_all(worker, clock)

            ref = store.card_ref("INC-0001", "slack")
            assert ref is not None
            replies = [m for m in api.messages.values() if m.thread_ts]
            assert [m.thread_ts for m in replies] == [ref.partition(":")[2]]  # one reply, under the card
            assert len(api.accepted("conversations.replies")) == 1
            assert api.accepted("conversations.history") == []
            assert store.sent == [store.seq("open"), store.seq("still down")]

    asyncio.run(scenario())


def test_without_the_history_scope_a_post_whose_answer_was_lost_goes_out_again_and_the_log_names_the_scope(
    short_deadline: None, caplog: pytest.LogCaptureFixture
) -> None:

    async def scenario() -> None:
        async with outbox_now() as (api, _adapter, store, worker, clock):
            api.fail(error="missing_scope", methods=["conversations.history"])
            store.enqueue([card("INC-0001", "open"), card("INC-0002", "also down")], clock())
            await lose_the_first_answer(api, worker, store, clock)
            with caplog.at_level(logging.WARNING, logger="certops"):
                await deliver_all(worker, clock)

            assert titles(api, "chat.postMessage") == ["open", "open", "also down"]  # at least once
            newest_open = max((m for m in api.messages.values() if "open" in m.block_text()), key=lambda m: float(m.ts))
            assert store.card_ref("INC-0001", "slack") == f"{SLACK_CHANNEL}:{newest_open.ts}"
            [warning] = [r for r in caplog.records if "conversations.history" in r.getMessage()]
            assert "missing_scope" in warning.getMessage()
            assert "channels:history" in warning.getMessage()
            assert worker.failed_total == 0

    asyncio.run(scenario())


def test_when_the_lookup_itself_meets_an_outage_the_row_waits_and_is_still_delivered_once(short_deadline: None) -> None:

    async def scenario() -> None:
        async with outbox_now() as (api, _adapter, store, worker, clock):
            store.enqueue([card("INC-0001", "open")], clock())
            await lose_the_first_answer(api, worker, store, clock)
            api.fail(503, methods=["conversations.history"], times=2)
            await deliver_all(worker, clock)

            assert len(api.messages) == 1
            assert len(api.accepted("chat.postMessage")) == 1
            assert [c.status for c in api.calls_to("conversations.history")] == [503, 503, 200]
            assert len(store.retries) == 3

    asyncio.run(scenario())


def test_a_message_another_app_tagged_as_the_card_is_not_taken_for_it(short_deadline: None) -> None:

    async def scenario() -> None:
        async with outbox_now() as (api, adapter, store, worker, clock):
            await adapter.start()  # http mode: auth.test only, and the adapter learns its own user id
            store.enqueue([card("INC-0001", "open")], clock())
            await lose_the_first_answer(api, worker, store, clock)
            [landed] = api.messages.values()
            landed.user = "U0OTHERAPP"  # as if another app had posted it, with the card's tag
            await deliver_all(worker, clock)

            assert len(api.accepted("chat.postMessage")) == 2
            ref = store.card_ref("INC-0001", "slack")
            assert ref is not None
            assert ref.partition(":")[2] != landed.ts

    asyncio.run(scenario())
