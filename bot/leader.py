"""Which `certops run` replica leads: a lease row in the shared database (bot.store.lease),
renewed every third of `[bot] leader_lease`.

A lease row and not a PostgreSQL session advisory lock: an advisory lock lives as long as one
database connection, so a replica cut off from the database keeps "holding" it until the server
notices the dead connection (TCP keep-alive: minutes), and a pooled connection that is recycled
drops it silently. A lease has an end written in the database that every replica reads the same
way, and the holder stops acting on its own clock before that end: after a partition it has
stopped leading before anyone else can start.

The leader runs the scheduler (probes, host checks, digest, heartbeats) and the outbox; every
replica answers chat, and a button press is settled by the store's compare-and-set wherever it
lands. With SQLite there is one process per database (a file lock), so that process always leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import secrets
import socket
from collections.abc import Awaitable, Callable

from bot.core.model import Lease
from bot.core.ports import LeasePort
from bot.logs import logger

log = logger(__name__)

# the leader stops acting this far into its lease without a renewal: the rest is the margin for
# a slow stop and for clocks that disagree (keep replicas' clocks in sync with NTP)
STOP_AT = 0.6


def replica_id() -> str:
    """Unique among replicas and readable in a log: host name, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class LeaderElector:
    def __init__(
        self,
        store: LeasePort,
        ttl: float,
        *,
        on_elected: Callable[[], Awaitable[None]],
        on_deposed: Callable[[], Awaitable[None]],
        on_leading: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        holder: str | None = None,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.on_leading = on_leading  # after each renewal while leading: the leader's own rounds
        self.clock = clock
        self.holder = holder or replica_id()
        self.leading = False
        self.term: int | None = None
        self._renewed_at: float | None = None  # the loop's monotonic time of the last renewal
        self._task: asyncio.Task[None] | None = None
        self._stop_timer: asyncio.TimerHandle | None = None
        self._expiry: asyncio.Future[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="leader lease")

    async def stop(self) -> None:
        """Stops leading (the caller's on_deposed runs) and gives the lease up for the next replica."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._stop_timer is not None:
            self._stop_timer.cancel()
        if self._expiry is not None:
            await asyncio.gather(self._expiry, return_exceptions=True)
        if self.leading:
            await self._depose("certops is stopping")
            try:
                await asyncio.wait_for(asyncio.to_thread(self.store.release_lease, self.holder, self.clock()), 2.0)
            except Exception as exc:  # the lease then simply runs out
                log.warning("could not give up the leader lease (%s); it runs out by itself", type(exc).__name__)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            try:
                await self._round(loop)
            except Exception:  # never let a failed start or stop end the renewals: stop leading instead
                log.exception("the leader lease loop failed; this replica stops leading and tries again")
                if self.leading:
                    with contextlib.suppress(Exception):
                        await self._depose("the lease loop failed")
            await asyncio.sleep(self.ttl / 3)

    async def _round(self, loop: asyncio.AbstractEventLoop) -> None:
        asked = loop.time()  # the lease runs from when it was asked for, not from when the answer came
        lease = await self._claim()
        if lease is not None and lease.holder == self.holder:
            self._renewed_at = asked
            self._arm_stop(loop, asked)
            if not self.leading:
                self.leading, self.term = True, lease.term
                log.info("this replica (%s) leads now, term %d", self.holder, lease.term)
                await self.on_elected()
            if self.on_leading is not None:
                try:
                    await asyncio.wait_for(self.on_leading(), self.ttl / 3)
                except Exception:  # the lease matters more than one round of the leader's chores
                    log.exception("the leader's periodic work failed; it runs again at the next renewal")
        elif self.leading and (lease is not None or self._lease_spent(loop.time())):
            # another replica holds it, or this one could not renew in time: stop at once
            why = f"{lease.holder} holds the lease" if lease is not None else "the lease could not be renewed"
            await self._depose(why)

    def _arm_stop(self, loop: asyncio.AbstractEventLoop, renewed_at: float) -> None:
        """Stops leading at STOP_AT of the lease unless a renewal comes first, whatever the loop
        is busy with (a claim that hangs, a slow chore)."""
        if self._stop_timer is not None:
            self._stop_timer.cancel()

        def expire() -> None:
            if self.leading and self._renewed_at == renewed_at:
                self._expiry = asyncio.ensure_future(self._depose("the lease could not be renewed in time"))

        self._stop_timer = loop.call_at(renewed_at + STOP_AT * self.ttl, expire)

    def _lease_spent(self, now: float) -> bool:
        return self._renewed_at is None or now - self._renewed_at >= STOP_AT * self.ttl

    async def _claim(self) -> Lease | None:
        """The lease after trying to take it; None when the database did not answer in time
        (as if another replica held it: a replica that cannot reach the database must not lead)."""
        try:
            claimed = await asyncio.wait_for(
                asyncio.to_thread(self.store.claim_lease, self.holder, self.clock(), self.ttl), self.ttl / 3
            )
        except Exception as exc:
            log.warning("the leader lease could not be claimed or renewed (%s)", type(exc).__name__)
            return None
        if claimed is not None:
            return claimed
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.store.lease), self.ttl / 3)
        except Exception:
            return None

    async def _depose(self, why: str) -> None:
        if not self.leading:
            return
        self.leading = False
        if self._stop_timer is not None:
            self._stop_timer.cancel()
        log.warning("this replica (%s) no longer leads: %s", self.holder, why)
        await self.on_deposed()
