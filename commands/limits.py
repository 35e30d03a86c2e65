"""Per-person and per-host limits on the commands that reach a host: /ssl heal, check, audit
and renew ([policy] rate_per_person, rate_per_host, per minute).

A sliding window of the last minute's admitted commands, in memory and per process (a restart
forgets it, and two replicas each count their own). A person is [policy.people]'s name, so one
person's Slack and LINE ids share a bucket. A command turned away is not counted, so a burst
does not push the next allowed moment further out.

Deliberately outside these limits: the bot's own scheduled work (it never comes through a
command), and button presses. A press runs an approved action exactly once (the store claims it)
and a press by anyone else never reaches the host, so limiting presses would only ever keep an
approver from a repair.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque

from bot.config import Policy
from bot.core.incidents import Clock, system_clock
from bot.core.model import Principal

WINDOW = dt.timedelta(minutes=1)
_SWEEP_AT = 1024  # buckets: beyond this, idle ones are dropped (people come and go)


class RateLimits:
    def __init__(self, policy: Policy, clock: Clock = system_clock) -> None:
        self.policy = policy
        self.clock = clock
        self._people: dict[str, deque[dt.datetime]] = {}
        self._hosts: dict[str, deque[dt.datetime]] = {}

    def person_of(self, who: Principal) -> str:
        # presses or messages whose sender the platform did not name share one bucket per
        # platform: they cannot be told apart, so they cannot get a bucket each
        return self.policy.person(who.key) if who.key else f"{who.platform}:unidentified"

    def admit(self, who: Principal, host: str) -> str | None:
        """Counts one command by `who` that reaches `host` and returns None, or, over a limit,
        counts nothing and returns a polite sentence saying when to try again."""
        now = self.clock()
        person = self._window(self._people, self.person_of(who), now)
        per_host = self._window(self._hosts, host, now)
        if len(person) >= self.policy.rate_per_person:
            wait = _until_free(person, now)
            many = _commands(self.policy.rate_per_person)
            return (
                f"Sorry, you have already run {many} in the last minute ([policy] rate_per_person); "
                f"please try again in {wait}."
            )
        if len(per_host) >= self.policy.rate_per_host:
            wait = _until_free(per_host, now)
            many = _commands(self.policy.rate_per_host)
            return (
                f"Sorry, {host} has already had {many} in the last minute ([policy] rate_per_host); "
                f"please try again in {wait}."
            )
        person.append(now)
        per_host.append(now)
        return None

    def _window(self, buckets: dict[str, deque[dt.datetime]], key: str, now: dt.datetime) -> deque[dt.datetime]:
        if len(buckets) > _SWEEP_AT:
            for idle in [k for k, times in buckets.items() if not times or now - times[-1] >= WINDOW]:
                del buckets[idle]
        times = buckets.setdefault(key, deque())
        while times and now - times[0] >= WINDOW:
            times.popleft()
        return times


def _commands(count: int) -> str:
    return f"{count} command that reaches a host" if count == 1 else f"{count} commands that reach a host"


def _until_free(times: deque[dt.datetime], now: dt.datetime) -> str:
    seconds = max(1, math.ceil((times[0] + WINDOW - now).total_seconds()))
    return f"{seconds} second{'s' if seconds != 1 else ''}"
