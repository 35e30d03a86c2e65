"""The bot's own worker for slow follow-ups (diagnoses, repairs, probes).

Chat adapters answer within the platform's deadline and hand the slow part here; it runs as a
task on the event loop, bounded in number, while blocking host actions sit on their own thread
pool (bot.services), so neither a chat SDK's listener threads nor the loop are ever held up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bot.logs import logger
from commands.model import FollowUp, Reply

log = logger(__name__)

Deliver = Callable[[Reply], Awaitable[None]]


class Worker:
    def __init__(self, max_concurrent: int = 64) -> None:
        self._gate = asyncio.Semaphore(max_concurrent)
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, follow_up: FollowUp, deliver: Deliver) -> asyncio.Task[None]:
        """Runs `follow_up` soon and passes its reply to `deliver` (e.g. a card update)."""
        task = asyncio.get_running_loop().create_task(self._run(follow_up, deliver))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self, follow_up: FollowUp, deliver: Deliver) -> None:
        async with self._gate:
            reply = await follow_up()
        try:
            await deliver(reply)
        except Exception:
            log.exception("could not deliver a follow-up reply (%s)", reply.title)

    @property
    def busy(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float = 30.0) -> None:
        """Waits for running follow-ups at shutdown, then cancels what is left."""
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()
