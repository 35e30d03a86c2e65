"""Small helpers the command modules share: looking up names, and describing probe results."""

from __future__ import annotations

import asyncio
from typing import TypeVar

from bot.config import Host, Site
from bot.config.reader import did_you_mean
from bot.core.describe import ICON, describe
from bot.probe import ProbeResult, Status, worst_status
from commands.context import Context
from commands.model import Principal, Tone
from commands.registry import UsageError, shown

T = TypeVar("T")
__all__ = ["ICON", "describe"]  # the commands take them from here

TONE_OF_STATUS = {"ok": Tone.OK, "warning": Tone.WARNING, "critical": Tone.CRITICAL, "unknown": Tone.WARNING}


def requester(who: Principal) -> str:
    """Who asked, as a proposal records it: a person is always "platform:id", so no display
    name can pass for the bot's own requester (bot.core.approvals.BOT)."""
    return who.key or f"an unidentified {who.platform} user"


async def admit(ctx: Context, who: Principal, host: str, command: str) -> None:
    """Counts a command that reaches `host` against [policy] rate_per_person and rate_per_host;
    over either, raises UsageError with a polite sentence saying when to try again."""
    refusal = ctx.rate_limits().admit(who, host)
    if refusal is not None:
        await asyncio.to_thread(ctx.store.audit, requester(who), command, host, "refused", "rate limit")
        raise UsageError(refusal)


def find_site(ctx: Context, name: str) -> Site:
    return _named(name, "site", ctx.config.site(name), [s.name for s in ctx.config.sites])


def find_host(ctx: Context, name: str) -> Host:
    return _named(name, "host", ctx.config.host(name), [h.name for h in ctx.config.hosts])


def _named(name: str, kind: str, found: T | None, known: list[str]) -> T:
    if found is None:
        listed = ", ".join(known) or "none"
        raise UsageError(f'No {kind} named "{shown(name)}".{did_you_mean(name, known)} {kind.capitalize()}s: {listed}.')
    return found


def host_of(ctx: Context, site: Site) -> Host:
    if site.host is None:
        raise UsageError(
            f'Site "{site.name}" names no host: add host = "..." to its [[sites]] entry to use host actions.'
        )
    return find_host(ctx, site.host)


def status_of(results: list[ProbeResult]) -> Status:
    return worst_status(results)
