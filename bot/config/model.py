"""The validated configuration. Everything here has passed `bot.config.load`."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import tzlocal  # an APScheduler 3 dependency; finds the machine's IANA zone on Linux and Windows alike

from bot.config.secrets import SecretRef
from bot.config.site import LOCAL as LOCAL
from bot.config.site import Site as Site
from host_actions.registry import NAMES
from host_actions.target import Host as Host  # re-exported: [[hosts]] entries are host_actions targets
from host_actions.target import Secret

HOST_ACTIONS = NAMES  # [policy] names actions as the registry does


class TimeOfDay(NamedTuple):
    """A wall-clock time in [bot] timezone; unpacks as `hour, minute = digest_at`."""

    hour: int
    minute: int

    def __str__(self) -> str:
        return f"{self.hour:02d}:{self.minute:02d}"


DIGEST_AT = TimeOfDay(9, 0)
MAX_PROBE_WORKERS = 64
PROBE_WORKERS_ENV = "CERTOPS_PROBE_WORKERS"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, where the system tells it)."""
    counted = getattr(os, "process_cpu_count", None)  # Python 3.13+
    if counted is not None:
        return int(counted() or 1)
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def default_probe_workers() -> int:
    """[bot] probe_workers when the config leaves it out: CERTOPS_PROBE_WORKERS when set (the
    test suite sets 1, so that not every test's bot starts processes), else one per usable core,
    at most MAX_PROBE_WORKERS. ValueError says what is wrong with a bad CERTOPS_PROBE_WORKERS."""
    text = os.environ.get(PROBE_WORKERS_ENV, "").strip()
    if not text:
        return min(MAX_PROBE_WORKERS, usable_cores())
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_PROBE_WORKERS:
        raise ValueError(
            f"the default from the environment variable {PROBE_WORKERS_ENV} must be a whole number "
            f"from 1 to {MAX_PROBE_WORKERS}, got {text!r}"
        )
    return int(text)


@dataclass(frozen=True)
class BotSettings:
    listen: str = "127.0.0.1:8080"
    database: str = "certops.db"
    # the password for a postgresql:// database ([bot] database_password_env or _file)
    database_password: SecretRef | None = None
    log_level: str = "info"
    log_format: str = "logfmt"  # or "json": how the structured fields of a log line are written
    probe_concurrency: int = 50
    # processes that probe (bot.probe.pool), fed by this one; 1: probe in this process
    probe_workers: int = field(default_factory=default_probe_workers)
    digest_at: TimeOfDay | None = DIGEST_AT  # when the daily digest is posted; None: no digest
    timezone: str | None = None  # IANA name; None: this machine's zone (see tz())
    # its path may carry the monitor's secret token: kept out of repr, log heartbeat_label() instead
    heartbeat_url: str | None = field(default=None, repr=False)
    # where the Windows hosts reach certops: their scripts post to {public_url}/api/report
    public_url: str | None = None
    renotify: float | None = 4 * 3600.0  # seconds between reminders of an open incident; None: never
    flap_limit: int = 4  # state changes per hour beyond which a site is flapping
    leader_lease: float = 15.0  # seconds a replica's lease on leading lasts without renewal (PostgreSQL)

    def tz(self) -> ZoneInfo:
        """The zone digests and cron maintenance windows are read in: [bot] timezone, or the machine's."""
        return ZoneInfo(self.timezone) if self.timezone else tzlocal.get_localzone()

    def heartbeat_label(self) -> str | None:
        """heartbeat_url safe to log: scheme and host only."""
        return redact_url(self.heartbeat_url) if self.heartbeat_url else None


def redact_url(url: str) -> str:
    """'https://hc-ping.com/0f3c…' -> 'https://hc-ping.com/…': tokens hide in paths and queries."""
    parts = urlsplit(url)
    if parts.netloc:
        base, rest = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}", parts.path + parts.query
    else:
        base, _, rest = url.partition("/")
    return f"{base}/…" if rest.strip("/") or parts.fragment else base


@dataclass(frozen=True)
class Agent:
    """A probe agent (`certops agent`): probes sites from another network and reports over HTTPS."""

    name: str
    secret: SecretRef
    report_interval: float = 120.0  # silent for 3 times this: its heartbeat incident opens


@dataclass(frozen=True)
class Maintenance:
    """A window in which alerts for some sites are held back: once (start to end), or repeating
    (opening at each fire time of `cron`, read in `timezone`, for `duration` seconds).

    Windows are half-open, [opening, closing): at the closing instant alerts flow again.
    """

    sites: tuple[str, ...]  # site names, or ("*",) for every site
    reason: str
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    cron: str | None = None
    duration: float | None = None
    timezone: dt.tzinfo = dt.UTC
    _trigger: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        once = self.start is not None and self.end is not None
        repeating = self.cron is not None and self.duration is not None
        if once == repeating:
            raise ValueError("a maintenance window needs either start and end, or cron and duration")
        if self.cron is not None:
            # built once: the config is validated once and read on every probe round
            object.__setattr__(self, "_trigger", cron_trigger(self.cron, self.timezone))

    def covers(self, site: str, now: dt.datetime) -> bool:
        _require_aware(now)
        if "*" not in self.sites and site not in self.sites:
            return False
        if self._trigger is None:
            return self.ends_after(now) is not None
        # the first opening after now - duration is the only one that can matter: it is open if it began
        opening = self._opening_from(now - self._length() + _TICK)
        return opening is not None and opening <= now

    def ends_after(self, now: dt.datetime) -> dt.datetime | None:
        """When the window open at `now` closes (in UTC), or None when none is open; sites aside."""
        _require_aware(now)
        if self.start is not None and self.end is not None:
            return self.end.astimezone(dt.UTC) if self.start <= now < self.end else None
        # a rule that fires more often than `duration` overlaps itself: the latest opening closes last
        closes = None
        opening = self._opening_from(now - self._length() + _TICK)
        while opening is not None and opening <= now:
            closes = opening.astimezone(dt.UTC) + self._length()
            opening = self._opening_from(opening, previous=opening)
        return closes

    def _length(self) -> dt.timedelta:
        assert self.duration is not None
        return dt.timedelta(seconds=self.duration)

    def _opening_from(self, moment: dt.datetime, previous: dt.datetime | None = None) -> dt.datetime | None:
        """The first fire time at or after `moment` (after `previous`, when given)."""
        # moments are compared in UTC, so "now - duration" is elapsed time even across a DST change
        opening: dt.datetime | None = self._trigger.get_next_fire_time(previous, moment.astimezone(dt.UTC))
        return opening


def cron_trigger(rule: str, tz: dt.tzinfo) -> Any:
    """APScheduler 3's reading of a 5-field crontab rule; ValueError says what is wrong with it."""
    # imported here: APScheduler pulls in asyncio and importlib.metadata, which `certops check` never needs
    from apscheduler.triggers.cron import CronTrigger

    return CronTrigger.from_crontab(rule, timezone=tz)


def _require_aware(now: dt.datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")


_TICK = dt.timedelta(microseconds=1)  # APScheduler rounds up to the next second: a window ending now is over


@dataclass(frozen=True)
class SlackSettings:
    mode: str
    channel: str
    bot_token: SecretRef
    app_token: SecretRef | None = None
    signing_secret: SecretRef | None = None
    api_url: str | None = None


@dataclass(frozen=True)
class LineSettings:
    to: str | None  # the group or user id incidents are pushed to; None: not pushed (see bot.chat.line)
    channel_secret: SecretRef
    access_token: SecretRef
    api_url: str | None = None


@dataclass(frozen=True)
class Policy:
    approvers: tuple[str, ...] = ()
    action_approvers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    two_person: tuple[str, ...] = ()
    auto_heal: tuple[str, ...] = ()
    button_ttl: float = 1800.0
    # identity ("slack:U…", "line:U…") -> person: one person's two identities are one approver
    people: dict[str, str] = field(default_factory=dict)
    rate_per_person: int = 6  # commands that reach a host, per person per minute
    rate_per_host: int = 20  # commands that reach one host, per minute, whoever asks

    def person(self, principal: str) -> str:
        """Who stands behind an identity: the [policy.people] name, or the identity itself."""
        return self.people.get(principal, principal)


@dataclass(frozen=True)
class Config:
    source: str
    bot: BotSettings = field(default_factory=BotSettings)
    sites: tuple[Site, ...] = ()
    hosts: tuple[Host, ...] = ()
    slack: SlackSettings | None = None
    line: LineSettings | None = None
    policy: Policy = field(default_factory=Policy)
    maintenance: tuple[Maintenance, ...] = ()
    agents: tuple[Agent, ...] = ()

    def agent(self, name: str) -> Agent | None:
        return next((a for a in self.agents if a.name == name), None)

    def site(self, name: str) -> Site | None:
        return self._sites_by_name.get(name)

    @cached_property
    def _sites_by_name(self) -> dict[str, Site]:
        # every probe looks its site up: a scan of 10,000 sites each time shows in the profile
        return {s.name: s for s in self.sites}

    def host(self, name: str) -> Host | None:
        return next((h for h in self.hosts if h.name == name), None)

    def in_maintenance(self, site: str, now: dt.datetime) -> Maintenance | None:
        """The first maintenance window that holds back alerts for `site` at `now`, if any."""
        return next((m for m in self.maintenance if m.covers(site, now)), None)

    def secret_refs(self) -> list[Secret]:
        refs: list[Secret | None] = [h.password for h in self.hosts] + [h.report_secret for h in self.hosts]
        refs.append(self.bot.database_password)
        refs += [a.secret for a in self.agents]
        if self.slack:
            refs += [self.slack.bot_token, self.slack.app_token, self.slack.signing_secret]
        if self.line:
            refs += [self.line.channel_secret, self.line.access_token]
        return [r for r in refs if r is not None]
