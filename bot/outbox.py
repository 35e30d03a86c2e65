"""Delivers the outbox: the chat messages the bot sends on its own (incident cards and their
edits, re-notifications, the digest, notices), which the core writes as rows in the same
transaction as the state change that causes them.

One loop per platform takes the platform's oldest due row, has the renderer turn it into a
Reply, and hands it to the platform's Destination (its chat adapter):

- In order, head of line: a row waiting for a retry holds back the rows behind it, so a card is
  never overtaken by its own re-notification, nor an edit by an older one.
- A card's edits collapse. When the head is a CARD row and newer CARD rows of the same incident
  are pending, the newest one is rendered and delivered in the head's place; the older ones are
  superseded once it is settled. Older content never goes out after newer content.
- At least once. A row is marked sent only after its destination said it was delivered; a crash
  in between delivers it again (an EDIT is harmless twice; LINE's retry key makes a repeated push
  a no-op). A card's reference is saved before its row is marked sent, so a retried NEW that got
  through becomes an EDIT of the card it made, not a second card. And the row notes when its first
  attempt began, before the platform is called: a retry of a row tried before hands that on
  (Outgoing.tried_since), and Slack looks for the post by its tag before posting it again.
- Transient errors are retried with exponential backoff and jitter (1 s, 2 s, 4 s … 5 min), never
  sooner than the platform's Retry-After; permanent ones fail the row (one log line) and the loop
  goes on with the next row.

Times come from `clock` (the store compares them with each row's next attempt), so a test moves a
fake clock instead of sleeping; between looks a loop waits for wake() or `poll` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import inspect
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import NamedTuple

from bot.chat.base import DeliveryError, DeliveryKind, Destination, Outgoing
from bot.core.model import MessageKind, OutboxMessage
from bot.core.ports import OutboxPort, StoreRefused
from bot.logs import logger
from commands.model import Reply

log = logger(__name__)

POLL_SECONDS = 1.0  # a loop looks again this often without a wake()
BACKOFF_BASE = 1.0
BACKOFF_CAP = 300.0
STUCK_AFTER = dt.timedelta(minutes=15)
STOP_GRACE = 10.0  # seconds stop() lets a delivery in flight finish
# A destination bounds each API call itself; this only keeps one that hangs anyway (a LINE
# delivery may read the quota and push: three calls) from holding its platform's loop forever.
DELIVERY_DEADLINE = 120.0


class Rendered(NamedTuple):
    """What the renderer makes of a row: the Reply to send, and whether it is worth a message of
    its own on a platform that cannot edit (False for a minor card edit). A plain
    `(reply, notable)` tuple is the same thing."""

    reply: Reply
    notable: bool = True


# Turns a row into (reply, notable), or None when there is nothing to send any more (the incident
# is gone). A coroutine function runs on the event loop; a plain function runs in a thread, as it
# will usually read the store.
Renderer = Callable[[OutboxMessage], tuple[Reply, bool] | Awaitable[tuple[Reply, bool] | None] | None]


def backoff(
    attempts: int, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP, jitter: Callable[[], float] = random.random
) -> float:
    """Seconds to wait after a row's `attempts`-th failed try (0 for the first): doubling from
    `base`, capped at `cap`, each picked between half and all of it so that loops recovering from
    the same outage do not all come back in the same second."""
    full = min(cap, base * 2.0 ** min(attempts, 32))
    return full * (0.5 + 0.5 * jitter())


class OutboxWorker:
    def __init__(
        self,
        store: OutboxPort,
        destinations: Mapping[str, Destination],
        renderer: Renderer,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        poll: float = POLL_SECONDS,
        stop_grace: float = STOP_GRACE,
        stuck_after: dt.timedelta = STUCK_AFTER,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        # Read at start() and at each wake(): a chat added here after the worker was built (the
        # console, an adapter started later) gets its own loop. A dict is shared, not copied, so
        # the core's own table of destinations and this one stay the same.
        self.destinations: dict[str, Destination] = (
            destinations if isinstance(destinations, dict) else dict(destinations)
        )
        self.clock = clock
        self.poll = poll
        self.stop_grace = stop_grace
        self.stuck_after = stuck_after
        self.failed_total = 0  # rows failed for good since start (the store's failed_count() has all)
        self.delivered_total = 0  # rows delivered since start
        self._renderer = renderer
        self._async_renderer = _is_coroutine_function(renderer)
        self._jitter = jitter
        self._wakeups: dict[str, asyncio.Event] = {}
        self._locks: dict[str, asyncio.Lock] = {}  # one row at a time per platform, loop or deliver_due()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._heads: dict[str, OutboxMessage] = {}  # per platform: the row holding the line, until settled
        self._last_errors: dict[str, str] = {}
        self._traced: dict[str, int] = {}  # per platform: the row whose unexpected error was logged in full
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    # lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Starts one loop per platform; call inside the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._start_loops()

    def _start_loops(self) -> None:
        for platform in list(self.destinations):
            if platform not in self._tasks or self._tasks[platform].done():
                task = asyncio.create_task(self._run(platform), name=f"outbox:{platform}")
                self._tasks[platform] = task

    async def stop(self) -> None:
        """No new row is taken; a delivery in flight gets `stop_grace` seconds to finish and be
        marked. One that does not is cancelled and its row stays pending, to go out next run."""
        self._stopping = True
        self._set_all()
        tasks = list(self._tasks.values())
        self._tasks.clear()
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=self.stop_grace)
        for task in late:
            log.warning("outbox: %s: a delivery outlasted %.0fs; it stays pending", task.get_name(), self.stop_grace)
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=1.0)

    def wake(self) -> None:
        """Look now: the core just enqueued something. Safe from any thread."""
        loop = self._loop
        if loop is None:
            return  # not started: start() looks anyway
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._set_all()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing left to wake
                loop.call_soon_threadsafe(self._set_all)

    # health and metrics -------------------------------------------------------------------------

    @property
    def stuck(self) -> bool:
        """True when a platform's oldest pending row has waited longer than `stuck_after` (an
        outage, a destination that keeps failing), or when a loop has died."""
        now = self.clock()
        if any(now - head.created_at > self.stuck_after for head in self._heads.values()):
            return True
        return not self._stopping and any(task.done() for task in self._tasks.values())

    def permanent_errors(self) -> dict[str, str]:
        """Per platform, the last permanent error since start (for /healthz); user-safe text."""
        return dict(self._last_errors)

    # delivery -----------------------------------------------------------------------------------

    async def deliver_due(self) -> int:
        """Delivers, on every platform, what is due now (on the worker's clock) and returns how
        many rows it took; for a caller without the loops, such as a test moving a clock."""
        taken = 0
        for platform in list(self.destinations):
            while await self.run_once(platform):
                taken += 1
        return taken

    async def _run(self, platform: str) -> None:
        wakeup = self._wakeup(platform)
        failing = False
        while not self._stopping:
            wakeup.clear()  # before looking: a wake() during the look makes the next wait return at once
            try:
                busy = await self._once(platform, from_loop=True)
                failing = False
            except StoreRefused as exc:  # a full disk is not a bug: one line per streak, no traceback
                if not failing:
                    log.warning("outbox: the %s loop cannot mark the outbox: %s", platform, exc.reason)
                failing, busy = True, False
            except Exception:  # the store itself failed: look again later, with one traceback per streak
                if not failing:
                    log.exception("outbox: the %s loop could not read or mark the outbox", platform)
                failing, busy = True, False
            if not busy and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), self.poll)

    async def run_once(self, platform: str) -> bool:
        """Takes the platform's due head row (if any) and delivers, reschedules or fails it;
        False when nothing was due. One turn of a platform's loop, for deliver_due() and tests."""
        return await self._once(platform, from_loop=False)

    async def _once(self, platform: str, *, from_loop: bool) -> bool:
        async with self._lock(platform):
            head = await asyncio.to_thread(self.store.next_due, platform, self.clock())
            if head is None or (from_loop and self._stopping):  # stop() began meanwhile: it waits for the next run
                return False
            await self._take(platform, head)
            return True

    async def _take(self, platform: str, head: OutboxMessage) -> None:
        self._heads[platform] = head
        row = await self._newest_card(head)
        started = time.monotonic()
        try:
            async with asyncio.timeout(DELIVERY_DEADLINE):
                if head.tried_at is None:  # before the platform is called: a crash after it leaves this set
                    await asyncio.to_thread(self.store.mark_tried, head.seq, self.clock())
                delivered = await self._deliver(platform, row, head.tried_at)
        except DeliveryError as exc:
            if exc.permanent:
                await self._fail(platform, row, str(exc), time.monotonic() - started)
            else:
                await self._retry(platform, head, str(exc), exc.retry_after, time.monotonic() - started)
            return
        except Exception as exc:  # a renderer or adapter bug: retried like an outage, logged in full once
            seconds = time.monotonic() - started
            if self._traced.get(platform) != head.seq:
                self._traced[platform] = head.seq
                log.exception(
                    "outbox: %s message #%d failed unexpectedly",
                    platform,
                    row.seq,
                    extra=_fields(platform, row, "unexpected", seconds, head.attempts + 1),
                )
            await self._retry(platform, head, f"unexpected {type(exc).__name__}", None, seconds)
            return
        await self._settle(row)
        self._heads.pop(platform, None)
        if delivered:
            self.delivered_total += 1
            log.info(
                "outbox: %s delivered to %s (message #%d)",
                _what(row),
                platform,
                row.seq,
                extra=_fields(platform, row, "delivered", time.monotonic() - started, head.attempts + 1),
            )

    async def _newest_card(self, head: OutboxMessage) -> OutboxMessage:
        """The row whose content goes out in the head's place: for a CARD row, the newest pending
        CARD row of the same incident (it carries the whole card), otherwise the head itself."""
        if head.kind is not MessageKind.CARD or head.incident_id is None:
            return head
        same_card = await asyncio.to_thread(self.store.pending_cards, head.platform, head.incident_id)
        newest = max((m for m in same_card if m.seq > head.seq), key=lambda m: m.seq, default=head)
        if newest is not head and any(m.payload.get("notable", True) for m in same_card if m.seq <= newest.seq):
            # a notable step collapsed into a minor edit keeps it notable (LINE skips minor ones)
            newest = dataclasses.replace(newest, payload={**newest.payload, "notable": True})
        return newest

    async def _deliver(self, platform: str, row: OutboxMessage, tried_since: dt.datetime | None) -> bool:
        """Renders and delivers one row; False when the renderer found nothing to send."""
        rendered = await self._render(row)
        if rendered is None:
            log.info(
                "outbox: %s message #%d (%s) has nothing to send any more",
                platform,
                row.seq,
                row.kind,
                extra=_fields(platform, row, "nothing-to-send"),
            )
            return False
        reply, notable = rendered
        kind, ref = await self._where(row)
        card = row.kind is MessageKind.CARD and row.incident_id is not None
        key = f"card:{row.incident_id}" if card else row.retry_key
        outgoing = Outgoing(kind, reply, ref, row.retry_key, notable, key, tried_since)
        new_ref = await self.destinations[platform].deliver(outgoing)
        if card and row.incident_id is not None and new_ref and new_ref != ref:
            # before the row is marked sent: a crash in between retries it as an EDIT of this card
            await asyncio.to_thread(self.store.save_card_ref, row.incident_id, platform, new_ref)
        return True

    async def _where(self, row: OutboxMessage) -> tuple[DeliveryKind, str | None]:
        if row.kind is MessageKind.CARD and row.incident_id is not None:
            ref = await asyncio.to_thread(self.store.card_ref, row.incident_id, row.platform)
            return (DeliveryKind.EDIT if ref else DeliveryKind.NEW), ref
        if row.kind is MessageKind.RENOTIFY and row.incident_id is not None:
            ref = await asyncio.to_thread(self.store.card_ref, row.incident_id, row.platform)
            return DeliveryKind.THREAD, ref
        return DeliveryKind.NEW, None  # a digest, a notice: messages of their own, never a card

    async def _render(self, row: OutboxMessage) -> tuple[Reply, bool] | None:
        if self._async_renderer:
            value = self._renderer(row)
        else:
            value = await asyncio.to_thread(self._renderer, row)
        if inspect.isawaitable(value):
            value = await value
        return value

    # marking ------------------------------------------------------------------------------------

    async def _settle(self, row: OutboxMessage) -> None:
        # Older edits of the card first, then the row delivered: a crash in between leaves the
        # newest pending (delivered again, harmlessly), never an older one to go out after it.
        await self._supersede_older(row)
        await asyncio.to_thread(self.store.mark_sent, row.seq, self.clock())

    async def _fail(self, platform: str, row: OutboxMessage, error: str, seconds: float | None = None) -> None:
        log.warning(
            "outbox: %s message #%d (%s) failed for good: %s",
            platform,
            row.seq,
            row.kind,
            error,
            extra=_fields(platform, row, "failed", seconds, row.attempts + 1),
        )
        await self._supersede_older(row)  # their content is older still: no point sending it later
        await asyncio.to_thread(self.store.mark_failed, row.seq, error, self.clock())
        self._heads.pop(platform, None)
        self.failed_total += 1
        self._last_errors[platform] = error

    async def _retry(
        self, platform: str, head: OutboxMessage, error: str, retry_after: float | None, seconds: float | None = None
    ) -> None:
        # The head holds the line and counts the attempts, whichever row's content was tried.
        delay = max(backoff(head.attempts, jitter=self._jitter), retry_after or 0.0)
        log.warning(
            "outbox: %s message #%d not delivered (%s); attempt %d in %.1fs",
            platform,
            head.seq,
            error,
            head.attempts + 2,
            delay,
            extra=_fields(platform, head, "retrying", seconds, head.attempts + 1),
        )
        next_at = self.clock() + dt.timedelta(seconds=delay)
        await asyncio.to_thread(self.store.mark_retry, head.seq, error, next_at)

    async def _supersede_older(self, row: OutboxMessage) -> None:
        if row.kind is MessageKind.CARD and row.incident_id is not None:
            await asyncio.to_thread(self.store.supersede, row.platform, row.incident_id, row.seq)

    def _set_all(self) -> None:
        if self._loop is not None and not self._stopping:
            self._start_loops()  # a chat attached since start()
        for wakeup in self._wakeups.values():
            wakeup.set()

    def _wakeup(self, platform: str) -> asyncio.Event:
        return self._wakeups.setdefault(platform, asyncio.Event())

    def _lock(self, platform: str) -> asyncio.Lock:
        return self._locks.setdefault(platform, asyncio.Lock())


def _what(row: OutboxMessage) -> str:
    """What a row is, for a log line: "card for INC-0007", "digest"."""
    return f"{row.kind} for {row.incident_id}" if row.incident_id else str(row.kind)


def _fields(
    platform: str, row: OutboxMessage, outcome: str, seconds: float | None = None, attempt: int | None = None
) -> dict[str, object]:
    """The structured fields of a delivery's log line (bot.logs.FIELDS)."""
    return {
        "platform": platform,
        "incident": row.incident_id,
        "outcome": outcome,
        "seconds": seconds,
        "attempt": attempt,
    }


def _is_coroutine_function(function: object) -> bool:
    call = getattr(function, "__call__", None)  # noqa: B004 - an object with an async __call__ counts too
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(call)


__all__ = ["OutboxWorker", "Rendered", "Renderer", "backoff"]
