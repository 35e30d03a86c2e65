"""Ask a host once: a diagnosis (or a renewals read) of a host already under way is joined, and
one that finished less than a minute ago is reused.

A burst of /ssl heal, or a heal, a scheduled host check and a verification landing together,
would otherwise open one WinRM session each against a production host, all reading the same
certificates and bindings. Wraps any HostRunner (bot.core.services), so the commands, the action
flows and the scheduler share it without knowing.

What is reused must still be the truth: every host action that runs through the guard, and
`forget()` (called right before an approved change runs, so its pre-run recheck sees the host
as it is now), throws away what was read from that host; a read already under way then finishes
for those waiting on it but is neither kept nor joined by anyone new.

The scheduled host check sets out to look (that is its job, once per [[hosts]] check_interval):
it goes through `looking()`, which joins a read under way but never takes a finished one, and
what it reads is kept for everybody else.

In memory, per process: two replicas each keep their own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from bot.core.incidents import Clock, system_clock
from bot.core.services import ActionOutcome, Diagnosis, HostRunner, RenewalView
from bot.probe import ProbeResult

T = TypeVar("T")
FRESH = 60.0  # seconds a finished diagnosis is reused for
_Key = tuple[str, ...]


@dataclass
class _Read:
    task: asyncio.Future[Any]
    generation: int


class HostGuard:
    def __init__(self, runner: HostRunner, *, fresh: float = FRESH, clock: Clock = system_clock) -> None:
        self.runner = runner
        self.fresh = dt.timedelta(seconds=fresh)
        self.clock = clock
        self._running: dict[_Key, _Read] = {}
        self._kept: dict[_Key, tuple[dt.datetime, Any]] = {}
        # bumped by every change to a host: reads started before it are not kept or joined
        self._generation: dict[str, int] = {}

    def looking(self) -> HostRunner:
        """This guard for a caller that means to look at the host now (the scheduled check)."""
        return _Looking(self)

    async def diagnose(self, host: str, probe: ProbeResult | None, *, reuse: bool = True) -> Diagnosis:
        # the probe only matters through the certificate it saw (host_actions.diagnose._served):
        # two heals of a site that serves the same certificate ask the same question
        served = probe.certificate if probe is not None else None
        key: _Key = ("diagnose", host)
        if probe is not None and served is not None:
            key = ("diagnose", host, probe.target.hostname.lower(), served.sha1.upper())
        return await self._once(key, host, lambda: self.runner.diagnose(host, probe), reuse)

    async def renewals(self, host: str, *, reuse: bool = True) -> list[RenewalView]:
        return list(await self._once(("renewals", host), host, lambda: self.runner.renewals(host), reuse))

    async def run(self, host: str, action: str, args: tuple[str, ...]) -> ActionOutcome:
        self.forget(host)
        try:
            return await self.runner.run(host, action, args)
        finally:
            self.forget(host)  # whatever it changed, the next read sees it

    def forget(self, host: str) -> None:
        """Nothing read from `host` so far is reused: the next diagnosis asks the host again."""
        self._generation[host] = self._generation.get(host, 0) + 1
        for key in [k for k in self._kept if k[1] == host]:
            del self._kept[key]
        for key in [k for k in self._running if k[1] == host]:
            del self._running[key]

    async def _once(self, key: _Key, host: str, start: Callable[[], Awaitable[T]], reuse: bool) -> T:
        now = self.clock()
        self._expire(now)
        kept = self._kept.get(key)
        if kept is not None and reuse:
            return cast(T, kept[1])
        read = self._running.get(key)
        if read is None:
            started = read = _Read(asyncio.ensure_future(start()), self._generation.get(host, 0))
            self._running[key] = started
            started.task.add_done_callback(lambda _task: self._finished(key, host, started))
        # shielded: one asker giving up (a cancelled follow-up) does not cancel it for the others
        return cast(T, await asyncio.shield(read.task))

    def _finished(self, key: _Key, host: str, read: _Read) -> None:
        if self._running.get(key) is read:
            del self._running[key]
        if read.task.cancelled() or read.task.exception() is not None:
            return  # a failure is not kept: the next asker tries the host again
        if read.generation == self._generation.get(host, 0):
            self._kept[key] = (self.clock(), read.task.result())

    def _expire(self, now: dt.datetime) -> None:
        for key in [k for k, (at, _value) in self._kept.items() if now - at >= self.fresh]:
            del self._kept[key]


class _Looking:
    def __init__(self, guard: HostGuard) -> None:
        self.guard = guard

    async def diagnose(self, host: str, probe: ProbeResult | None) -> Diagnosis:
        return await self.guard.diagnose(host, probe, reuse=False)

    async def run(self, host: str, action: str, args: tuple[str, ...]) -> ActionOutcome:
        return await self.guard.run(host, action, args)

    async def renewals(self, host: str) -> list[RenewalView]:
        return await self.guard.renewals(host, reuse=False)
