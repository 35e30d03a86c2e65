"""The outbox worker's own behaviour: wake() from any thread, a stop that lets a delivery in
flight finish and marks nothing it did not deliver, health (pending, stuck, failures), backoff,
and errors nobody planned for."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading

import pytest

from bot.chat.base import Destination
from bot.core.model import MessageKind, OutboxMessage
from bot.outbox import BACKOFF_CAP, OutboxWorker, Rendered, backoff
from tests.chat.destinations import set_env
from tests.fakes.slack_api import SlackAPI
from tests.outbox.harness import Clock, Recorded, deliver_all, message, render, slack_outbox, wait_until


def notices(store: Recorded, clock: Clock, *titles: str) -> None:
    store.enqueue([message(MessageKind.NOTICE, title) for title in titles], clock())


async def retry_for(worker: OutboxWorker, clock: Clock, minutes: float) -> None:
    """The worker's loop body while `minutes` pass on the clock, ten seconds at a time."""
    end = clock() + dt.timedelta(minutes=minutes)
    while clock() < end:
        if not await worker.run_once("slack"):
            clock.advance(10)


def test_backoff_doubles_from_one_second_up_to_five_minutes_with_jitter_below_it() -> None:
    most = [backoff(n, jitter=lambda: 1.0) for n in range(12)]
    assert most == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
    assert [backoff(n, jitter=lambda: 0.0) for n in range(3)] == [0.5, 1, 2]
    assert backoff(10_000) <= BACKOFF_CAP


def test_a_wake_from_another_thread_makes_the_loop_look_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch)

    async def scenario() -> None:
        clock = Clock()
        async with SlackAPI() as api, slack_outbox(api) as (adapter, store):
            worker = OutboxWorker(store, {"slack": adapter}, render, clock=clock, poll=3600)
            worker.start()
            await asyncio.sleep(0.01)  # the loop has looked once and now waits (an hour, unless woken)

            def enqueue_elsewhere() -> None:  # as the core does, from a thread of its own
                notices(store, clock, "from a thread")
                worker.wake()

            await asyncio.to_thread(enqueue_elsewhere)
            await wait_until(lambda: store.sent, timeout=5)
            await worker.stop()
            assert len(api.accepted("chat.postMessage")) == 1

    asyncio.run(scenario())


def test_stop_lets_the_delivery_in_flight_finish_and_takes_no_new_row(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch)

    async def scenario() -> None:
        clock = Clock()
        async with SlackAPI() as api, slack_outbox(api) as (adapter, store):
            api.fail(delay=0.2, times=1)  # a slow Slack: the first post takes a moment
            worker = OutboxWorker(store, {"slack": adapter}, render, clock=clock, poll=0.01)
            notices(store, clock, "first", "second")
            worker.start()
            await wait_until(lambda: api.calls_to("chat.postMessage"))  # the first one is on its way
            await worker.stop()
            assert store.state("first") == "sent"
            assert store.state("second") == "pending"
            assert len(api.messages) == 1

    asyncio.run(scenario())


def test_a_delivery_that_outlasts_the_stop_grace_stays_pending_for_the_next_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_env(monkeypatch)

    async def scenario() -> None:
        clock = Clock()
        async with SlackAPI() as api, slack_outbox(api) as (adapter, store):
            api.fail(delay=0.5, times=1)
            worker = OutboxWorker(store, {"slack": adapter}, render, clock=clock, poll=0.01, stop_grace=0.05)
            notices(store, clock, "slow")
            worker.start()
            await wait_until(lambda: api.calls_to("chat.postMessage"))
            await worker.stop()
            assert store.state("slow") == "pending"  # not known to be delivered: never marked sent
            assert store.sent == []

    asyncio.run(scenario())


def test_the_worker_is_stuck_once_the_oldest_pending_row_has_waited_fifteen_minutes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_env(monkeypatch)

    async def scenario() -> None:
        clock = Clock()
        async with SlackAPI() as api, slack_outbox(api) as (adapter, store):
            api.fail(503)  # until recover()
            worker = OutboxWorker(store, {"slack": adapter}, render, clock=clock)
            notices(store, clock, "held", "behind it")
            assert store.pending_count() == 2
            await retry_for(worker, clock, minutes=14)
            assert not worker.stuck
            await retry_for(worker, clock, minutes=2)
            assert worker.stuck
            api.recover()
            await deliver_all(worker, clock)
            assert not worker.stuck
            assert store.pending_count() == 0
            assert store.sent_titles() == ["held", "behind it"]

    asyncio.run(scenario())


def test_an_unexpected_error_is_retried_like_an_outage_and_logged_with_its_traceback_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    set_env(monkeypatch)
    failures = 3

    def flaky(row: OutboxMessage) -> Rendered | None:
        nonlocal failures
        if failures:
            failures -= 1
            raise RuntimeError("a renderer bug")
        return render(row)

    async def scenario() -> None:
        clock = Clock()
        async with SlackAPI() as api, slack_outbox(api) as (adapter, store):
            worker = OutboxWorker(store, {"slack": adapter}, flaky, clock=clock)
            notices(store, clock, "eventually")
            with caplog.at_level(logging.WARNING, logger="certops.outbox"):
                await deliver_all(worker, clock)
            assert store.sent_titles() == ["eventually"]
            assert [error for _, error, _ in store.retries] == ["unexpected RuntimeError"] * 3
            assert worker.failed_total == 0

    asyncio.run(scenario())
    traced = [r for r in caplog.records if r.name == "certops.outbox" and r.exc_info]
    assert len(traced) == 1


def test_a_store_that_fails_for_a_moment_does_not_end_the_loop(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    set_env(monkeypatch)

    async def scenario() -> None:
        clock = Clock()
        async with SlackAPI() as api, slack_outbox(api) as (adapter, store):
            broken = threading.Event()
            broken.set()

            def next_due(platform: str, now: dt.datetime) -> OutboxMessage | None:
                if broken.is_set():
                    raise OSError("database is locked")
                return store.store.next_due(platform, now)

            monkeypatch.setattr(store, "next_due", next_due)
            worker = OutboxWorker(store, {"slack": adapter}, render, clock=clock, poll=0.01)
            notices(store, clock, "after the hiccup")
            with caplog.at_level(logging.ERROR, logger="certops.outbox"):
                worker.start()
                await asyncio.sleep(0.05)  # a few failed looks
                broken.clear()
                await wait_until(lambda: store.sent)
                await worker.stop()
            assert not worker.stuck

    asyncio.run(scenario())
    assert len([r for r in caplog.records if r.name == "certops.outbox"]) == 1  # one traceback per streak


def test_a_chat_attached_after_start_gets_its_own_loop_at_the_next_wake(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch)

    async def scenario() -> None:
        clock = Clock()
        async with SlackAPI() as api, slack_outbox(api) as (adapter, store):
            destinations: dict[str, Destination] = {}
            worker = OutboxWorker(store, destinations, render, clock=clock, poll=3600)
            worker.start()  # nothing attached yet, as when the core is built before the adapters start
            destinations["slack"] = adapter
            notices(store, clock, "for the late chat")
            worker.wake()
            await wait_until(lambda: store.sent, timeout=5)
            await worker.stop()
            assert len(api.accepted("chat.postMessage")) == 1

    asyncio.run(scenario())


def test_deliver_due_takes_what_is_due_on_every_platform_and_leaves_what_waits_for_a_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_env(monkeypatch)

    async def scenario() -> None:
        clock = Clock()
        async with SlackAPI() as api, slack_outbox(api) as (adapter, store):
            worker = OutboxWorker(store, {"slack": adapter}, render, clock=clock)
            notices(store, clock, "one", "two")
            assert await worker.deliver_due() == 2
            api.fail(503, times=1)
            notices(store, clock, "three")
            assert await worker.deliver_due() == 1  # tried once, now waiting for its retry
            assert store.state("three") == "pending"
            clock.advance(BACKOFF_CAP)
            assert await worker.deliver_due() == 1
            assert store.sent_titles() == ["one", "two", "three"]

    asyncio.run(scenario())
