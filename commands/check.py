from __future__ import annotations

from commands.common import TONE_OF_STATUS, describe, find_site, status_of
from commands.context import Context
from commands.model import Outcome, Reply, Request, Tone
from commands.registry import UsageError, command


@command("check", "check <site|url>", min_args=1, max_args=1)
async def check(ctx: Context, request: Request, args: list[str]) -> Outcome:
    """Probes a site (its public name and each origin) or any https:// URL now, from outside."""
    arg = args[0]
    if arg.startswith("https://"):
        label = arg

        async def probe() -> Reply:
            return _reply(label, await ctx.prober.probe_url(arg))
    elif "://" in arg:
        raise UsageError("Only https:// addresses can be checked.")
    else:
        site = find_site(ctx, arg)
        label = site.name

        async def probe() -> Reply:
            return _reply(label, await ctx.prober.probe_site(site))

    return Outcome(Reply(f"Checking {label}…", Tone.INFO), probe)


def _reply(label: str, results: list) -> Reply:  # type: ignore[type-arg]
    state = status_of(results).value
    return Reply(f"{label}: {state.upper()}", TONE_OF_STATUS[state], tuple(describe(r) for r in results))
