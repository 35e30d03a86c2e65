from __future__ import annotations

import asyncio
from typing import Any

from commands.common import ICON, TONE_OF_STATUS, describe, find_site, worst
from commands.context import Context
from commands.model import Field, Outcome, Reply, Request, Tone
from commands.registry import command

MAX_LINES = 40  # more sites than this: list the troubled ones and count the rest


@command("status", "status [site]", max_args=1)
async def status(ctx: Context, request: Request, args: list[str]) -> Outcome:
    """Every site's certificate, days left, last probe and open incidents; or one site in detail."""
    if args:
        return await _one_site(ctx, args[0])
    never = [s for s in ctx.config.sites if not ctx.store.last_results(s.name)]
    reply = _overview(ctx)
    if not never:
        return Outcome(reply)

    async def probe_the_rest() -> Reply:
        await asyncio.gather(*(ctx.prober.probe_site(site) for site in never))  # bounded by the prober
        return _overview(ctx)

    return Outcome(reply, probe_the_rest)


def _overview(ctx: Context) -> Reply:
    lines, counts = [], {"ok": 0, "warning": 0, "critical": 0, "unknown": 0}
    quiet = 0
    for site in ctx.config.sites:
        results = ctx.store.last_results(site.name)
        state = worst([str(r["status"]) for r in results]) if results else "unknown"
        counts[state] += 1
        if state == "ok" and len(ctx.config.sites) > MAX_LINES:
            quiet += 1
            continue
        lines.append(_site_line(ctx, site.name, state, results))
    if quiet:
        lines.append(f"…and {quiet} more sites, all OK.")
    total = len(ctx.config.sites)
    if total == 0:
        return Reply("No sites are configured.", lines=("Add [[sites]] entries to the config file.",))
    overall = "critical" if counts["critical"] else "warning" if counts["warning"] or counts["unknown"] else "ok"
    title = f"TLS status: {total} site{'s' if total != 1 else ''}, " + ", ".join(
        f"{n} {name}" for name, n in counts.items() if n
    )
    return Reply(title, TONE_OF_STATUS[overall], tuple(lines))


def _site_line(ctx: Context, name: str, state: str, results: list[dict[str, Any]]) -> str:
    if not results:
        return f"{ICON['unknown']} {name}: not probed yet"
    certs = [r["certificate"] for r in results if r.get("certificate")]
    days = min((c["days_left"] for c in certs), default=None)
    found = [p for r in results for p in r["problems"]]
    problems = [p["message"] for p in sorted(found, key=lambda p: p["severity"] != "critical")]  # worst first
    parts = [f"{ICON[state]} {name}"]
    if days is not None:
        parts.append(f"{days} days left")
    parts.append(f"checked {min(r['checked_at'] for r in results)[11:16]} UTC")
    if problems:
        parts.append(problems[0] + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""))
    incidents = ctx.store.open_incidents(name)
    if incidents:
        parts.append(", ".join(f"{i.id} {i.state}" for i in incidents))
    return " · ".join(parts)


async def _one_site(ctx: Context, name: str) -> Outcome:
    site = find_site(ctx, name)

    def detail() -> Reply:
        results = ctx.store.last_results(site.name)
        state = worst([str(r["status"]) for r in results]) if results else "unknown"
        fields = [Field("URL", site.url), Field("Host", site.host or "none configured")]
        if site.origins:
            fields.append(Field("Origins", ", ".join(site.origins)))
        for incident in ctx.store.open_incidents(site.name):
            fields.append(Field(incident.id, f"{incident.state} since {incident.opened_at}: {incident.summary}"))
        until = ctx.store.muted_until(site.name)
        if until:
            fields.append(Field("Muted until", until.strftime("%Y-%m-%d %H:%M UTC")))
        lines = tuple(describe(r) for r in results) or ("Not probed yet.",)
        return Reply(f"{site.name}: {state.upper()}", TONE_OF_STATUS[state], lines, tuple(fields))

    if ctx.store.last_results(site.name):
        return Outcome(detail())

    async def probe_first() -> Reply:
        await ctx.prober.probe_site(site)
        return detail()

    return Outcome(Reply(f"{site.name}: probing now…", Tone.INFO), probe_first)
