from __future__ import annotations

import asyncio
import datetime as dt

from bot.config.reader import parse_duration
from commands.common import find_site
from commands.context import Context
from commands.model import Outcome, Reply, Request, Tone
from commands.registry import UsageError, command, shown

MAX_MUTE = 7 * 86400


@command("mute", "mute <site> <duration>", min_args=2, max_args=2)
async def mute(ctx: Context, request: Request, args: list[str]) -> Outcome:
    """Silences a site's alerts for a while (e.g. 2h, at most 7d); probes go on. Approvers only."""
    site = find_site(ctx, args[0])
    seconds = parse_duration(args[1])
    if seconds is None or not 60 <= seconds <= MAX_MUTE:
        raise UsageError(f'"{shown(args[1])}" is not a duration from 1m to 7d, such as 30m, 2h or 1d.')
    who = request.who.key or request.who.describe()
    if not await ctx.approvals.may_approve(request.who, "mute"):
        await asyncio.to_thread(ctx.store.audit, who, "mute", site.name, "refused", "not an approver")
        return Outcome(Reply("Sorry, only approvers may mute a site.", private=True))
    until = ctx.incidents.clock().replace(microsecond=0) + dt.timedelta(seconds=seconds)
    await asyncio.to_thread(ctx.store.mute, site.name, until, who)
    await asyncio.to_thread(ctx.store.audit, who, "mute", site.name, "done", f"until {until.isoformat()}")
    return Outcome(Reply(f"{site.name} muted until {until:%Y-%m-%d %H:%M} UTC by {request.who.describe()}.", Tone.INFO))
