"""The outbox worker on the real store, delivering through the real adapters to the chat
stand-ins, on a clock the test moves: no test waits for a backoff in real time."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from bot.chat.line import LineAdapter, QuotaRule
from bot.chat.slack import SlackAdapter
from bot.core.model import MessageKind, NewMessage, OutboxMessage
from bot.outbox import OutboxWorker, Rendered
from bot.store import SqlStore, open_store
from commands.model import Reply, Tone
from tests.chat.destinations import bare_core, line_adapter, slack_adapter
from tests.fakes.clock import ManualClock
from tests.fakes.line_api import LineApiStandIn
from tests.fakes.slack_api import SlackAPI

START = dt.datetime(2030, 1, 1, 9, 0, tzinfo=dt.UTC)


class Clock(ManualClock):
    """Time as the worker and the stand-ins see it: moves only when the test says so."""

    def __init__(self, start: dt.datetime = START) -> None:
        super().__init__(start)

    def seconds(self) -> float:
        """The same time as a number, for the stand-ins' fail(seconds=...)."""
        return self.now.timestamp()


def card(incident: str, title: str, *, notable: bool = True, platform: str = "slack") -> NewMessage:
    return NewMessage(platform, MessageKind.CARD, incident, {"title": title, "notable": notable})


def message(kind: MessageKind, title: str, incident: str | None = None, platform: str = "slack") -> NewMessage:
    return NewMessage(platform, kind, incident, {"title": title})


def render(row: OutboxMessage) -> Rendered | None:
    """The test renderer: the payload says what to show; {"gone": true} is an incident deleted meanwhile."""
    if row.payload.get("gone"):
        return None
    title = str(row.payload["title"])
    reply = Reply(title, Tone.WARNING, (f"row {row.seq}",), incident_id=row.incident_id)
    return Rendered(reply, bool(row.payload.get("notable", True)))


async def render_async(row: OutboxMessage) -> tuple[Reply, bool] | None:
    """The same as a coroutine returning a plain (reply, notable) tuple, as commands/ renders."""
    await asyncio.sleep(0)
    rendered = render(row)
    return None if rendered is None else (rendered.reply, rendered.notable)


class Recorded:
    """The real store, noting what the worker settled: the port reads pending rows only, and a
    test wants to know which rows went out, failed or were superseded."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.titles: dict[int, str] = {}
        self.sent: list[int] = []
        self.failed: list[tuple[int, str]] = []
        self.retries: list[tuple[int, str, dt.datetime]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def next_due(self, platform: str, now: dt.datetime) -> OutboxMessage | None:
        return self.store.next_due(platform, now)  # explicit, so a test can swap it for a failing one

    def enqueue(self, messages: Sequence[NewMessage], at: dt.datetime) -> None:
        self.store.enqueue(messages, at)
        for row in self.store.pending():
            self.titles.setdefault(row.seq, str(row.payload.get("title")))

    def mark_sent(self, seq: int, at: dt.datetime) -> bool:
        done = self.store.mark_sent(seq, at)
        if done:
            self.sent.append(seq)
        return done

    def mark_failed(self, seq: int, error: str, at: dt.datetime) -> None:
        self.store.mark_failed(seq, error, at)
        self.failed.append((seq, error))

    def mark_retry(self, seq: int, error: str, next_attempt_at: dt.datetime) -> None:
        self.store.mark_retry(seq, error, next_attempt_at)
        self.retries.append((seq, error, next_attempt_at))

    def seq(self, title: str) -> int:
        [seq] = [s for s, t in self.titles.items() if t == title]
        return seq

    def state(self, title: str) -> str:
        seq = self.seq(title)
        if seq in self.sent:
            return "sent"
        if seq in (s for s, _ in self.failed):
            return "failed"
        if seq in (m.seq for m in self.store.pending()):
            return "pending"
        return "superseded"  # settled, but neither sent nor failed by the worker

    def sent_titles(self) -> list[str]:
        return [self.titles[seq] for seq in self.sent]


@contextmanager
def recorded_store(path: Path | str = ":memory:") -> Iterator[Recorded]:
    store = open_store(str(path))
    try:
        yield Recorded(store)
    finally:
        store.close()


@asynccontextmanager
async def slack_outbox(
    api: SlackAPI, database: Path | str = ":memory:"
) -> AsyncIterator[tuple[SlackAdapter, Recorded]]:
    """A Slack adapter on the stand-in and a store, both closed after (call set_env first)."""
    adapter = slack_adapter(api)
    try:
        with recorded_store(database) as store:
            yield adapter, store
    finally:
        await adapter.stop()


@asynccontextmanager
async def line_outbox(
    api: LineApiStandIn, database: Path | str = ":memory:", quota: QuotaRule | None = None
) -> AsyncIterator[tuple[LineAdapter, Recorded]]:
    """A LINE adapter on the stand-in and a store; the adapter audits into that store."""
    with recorded_store(database) as store:
        adapter = await line_adapter(api, bare_core(store), quota)
        try:
            yield adapter, store
        finally:
            await adapter.stop(timeout=2)


async def deliver_all(worker: OutboxWorker, clock: Clock, platform: str = "slack", step: float = 1.0) -> int:
    """Runs the worker's loop body until the platform's outbox is empty, moving the clock one
    step whenever nothing is due (a backoff being waited out); returns how many steps it moved."""
    moved = 0
    for _ in range(10_000):
        if not await asyncio.to_thread(worker.store.pending, platform):
            return moved
        if not await worker.run_once(platform):
            clock.advance(step)
            moved += 1
    raise AssertionError(f"the {platform} outbox never emptied")


async def wait_until(condition: Callable[[], Any], timeout: float = 10.0) -> None:
    """Polls a condition while the worker's own loops run (a bound, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("the condition was never met")
        await asyncio.sleep(0.005)
