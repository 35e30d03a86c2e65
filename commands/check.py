from __future__ import annotations

import asyncio

from bot.config.urls import split_https_url
from bot.probe import ProbeResult
from commands.common import TONE_OF_STATUS, admit, describe, find_site, status_of
from commands.context import Context
from commands.model import Outcome, Reply, Request, Tone
from commands.registry import UsageError, command, shown


@command("check", "check <site|url>", min_args=1, max_args=1)
async def check(ctx: Context, request: Request, args: list[str]) -> Outcome:
    """Probes a site (its public name and each origin) now, from outside; approvers may also check any https:// URL."""
    arg = args[0]
    if "://" not in arg:
        site = find_site(ctx, arg)
        # a probe of the origin reaches the host too, and a failure it confirms diagnoses it
        await admit(ctx, request.who, site.host or site.name, "check")

        async def probe_site() -> Reply:
            results = await ctx.prober.probe_site(site)
            # a round like any other: it may confirm a failure (and the incident is diagnosed) or a recovery
            observation = await asyncio.to_thread(ctx.incidents.observe, site, results, actor="check")
            await ctx.flows.follow_up(site, observation, results)
            return _reply(site.name, results)

        return Outcome(Reply(f"Checking {site.name}…", Tone.INFO), probe_site)
    try:
        hostname, _port, _path = split_https_url(arg)
    except ValueError as exc:
        raise UsageError(f"{shown(arg)}: {exc}") from None
    # an arbitrary address would let anyone in the channel map internal hosts and ports
    if not await ctx.approvals.may_approve(request.who, "check"):
        raise UsageError("Only approvers may check an address that is not a configured site.")
    await admit(ctx, request.who, hostname, "check")

    async def probe_url() -> Reply:
        return _reply(arg, await ctx.prober.probe_url(arg))

    return Outcome(Reply(f"Checking {arg}…", Tone.INFO), probe_url)


def _reply(label: str, results: list[ProbeResult]) -> Reply:
    state = status_of(results).value
    return Reply(f"{label}: {state.upper()}", TONE_OF_STATUS[state], tuple(describe(r) for r in results))
