from __future__ import annotations

import asyncio

from bot.config import Site
from bot.core.model import Incident
from bot.probe import ProbeResult, worst_status
from commands.common import ICON, TONE_OF_STATUS, describe, find_site
from commands.context import Context
from commands.model import Field, Outcome, Reply, Request, Tone
from commands.registry import command

MAX_LINES = 40  # more sites than this: list the troubled ones and count the rest
QUICK_SITES = 200  # more sites than this: the overview comes as a follow-up, after the ack


@command("status", "status [site]", max_args=1)
async def status(ctx: Context, request: Request, args: list[str]) -> Outcome:
    """Every site's certificate, days left, last probe and open incidents; or one site in detail."""
    if args:
        return await _one_site(ctx, args[0])
    total = len(ctx.config.sites)
    if total > QUICK_SITES:
        # a large fleet takes a while to summarise: answer at once, the overview follows
        async def gather() -> Reply:
            return (await asyncio.to_thread(_overview, ctx))[0]

        return Outcome(Reply(f"Gathering the status of {total} sites…", Tone.INFO), gather)
    # reading every site's results blocks: in a thread, so /healthz and the probes go on meanwhile
    reply, never = await asyncio.to_thread(_overview, ctx)
    if not never:
        return Outcome(reply)

    async def probe_the_rest() -> Reply:
        rounds = await asyncio.gather(*(ctx.prober.probe_site(site) for site in never))  # bounded by the prober
        for site, results in zip(never, rounds, strict=True):
            await asyncio.to_thread(ctx.store.save_results, site.name, results)
        return (await asyncio.to_thread(_overview, ctx))[0]

    return Outcome(reply, probe_the_rest)


def _overview(ctx: Context) -> tuple[Reply, list[Site]]:
    """-> (the overview, the sites never probed yet)."""
    lines, counts = [], {"ok": 0, "warning": 0, "critical": 0, "unknown": 0}
    quiet = 0
    by_site: dict[str, list[ProbeResult]] = {}
    for result in ctx.store.last_results():
        by_site.setdefault(result.target.site or "", []).append(result)
    incidents: dict[str, list[Incident]] = {}
    for incident in ctx.store.open_incidents():
        incidents.setdefault(incident.subject, []).append(incident)
    never = [s for s in ctx.config.sites if s.name not in by_site]
    for site in ctx.config.sites:
        results = by_site.get(site.name, [])
        state = worst_status(results).value if results else "unknown"
        counts[state] += 1
        if state == "ok" and len(ctx.config.sites) > MAX_LINES:
            quiet += 1
            continue
        lines.append(_site_line(site.name, state, results, incidents.get(site.name, [])))
    if quiet:
        lines.append(f"…and {quiet} more sites, all OK." if lines else f"All {quiet} sites are OK.")
    total = len(ctx.config.sites)
    if total == 0:
        return Reply("No sites are configured.", lines=("Add [[sites]] entries to the config file.",)), never
    overall = "critical" if counts["critical"] else "warning" if counts["warning"] or counts["unknown"] else "ok"
    title = f"TLS status: {total} site{'s' if total != 1 else ''}, " + ", ".join(
        f"{n} {name}" for name, n in counts.items() if n
    )
    return Reply(title, TONE_OF_STATUS[overall], tuple(lines)), never


def _site_line(name: str, state: str, results: list[ProbeResult], incidents: list[Incident]) -> str:
    if not results:
        return f"{ICON['unknown']} {name}: not probed yet"
    days = min((r.certificate.days_left for r in results if r.certificate), default=None)
    found = [p for r in results for p in r.problems]
    problems = [p.message for p in sorted(found, key=lambda p: p.severity != "critical")]  # worst first
    parts = [f"{ICON[state]} {name}"]
    if days is not None:
        parts.append(f"{days} days left")
    parts.append(f"checked {min(r.checked_at for r in results)[11:16]} UTC")
    if problems:
        parts.append(problems[0] + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""))
    if incidents:
        parts.append(", ".join(f"{i.id} {i.state}" for i in incidents))
    return " · ".join(parts)


async def _one_site(ctx: Context, name: str) -> Outcome:
    site = find_site(ctx, name)

    def detail() -> Reply:
        results = ctx.store.last_results(site.name)
        state = worst_status(results).value if results else "unknown"
        fields = [Field("URL", site.url), Field("Host", site.host or "none configured")]
        if site.origins:
            fields.append(Field("Origins", ", ".join(site.origins)))
        for incident in ctx.store.open_incidents(site.name):
            since = f"{incident.opened_at:%Y-%m-%d %H:%M} UTC"
            fields.append(Field(incident.id, f"{incident.state} since {since}: {incident.summary}"))
        until = ctx.incidents.muted_until(site.name)
        if until:
            fields.append(Field("Muted until", until.strftime("%Y-%m-%d %H:%M UTC")))
        lines = tuple(describe(r) for r in results) or ("Not probed yet.",)
        return Reply(f"{site.name}: {state.upper()}", TONE_OF_STATUS[state], lines, tuple(fields))

    if await asyncio.to_thread(ctx.store.last_results, site.name):
        return Outcome(await asyncio.to_thread(detail))

    async def probe_first() -> Reply:
        await asyncio.to_thread(ctx.store.save_results, site.name, await ctx.prober.probe_site(site))
        return await asyncio.to_thread(detail)

    return Outcome(Reply(f"{site.name}: probing now…", Tone.INFO), probe_first)
