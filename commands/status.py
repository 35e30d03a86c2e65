from __future__ import annotations

import asyncio

from bot.config import Site
from bot.core.model import HostReport, Incident, report_subjects
from bot.core.quorum import (
    VantageResults,
    Verdict,
    agent_subject,
    judge,
    latest_rounds,
    quorum_subject,
    watched_from_elsewhere,
)
from bot.core.reports import layer_status
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
    never = [s for s in ctx.config.sites if s.name not in by_site and not watched_from_elsewhere(s)]
    agent_rounds = ctx.store.vantage_results() if any(watched_from_elsewhere(s) for s in ctx.config.sites) else []
    for site in ctx.config.sites:
        results = by_site.get(site.name, [])
        verdict = _verdict(ctx, site, results, agent_rounds)
        if verdict is not None:
            results = [r for v in verdict.views for r in v.results]
        state = worst_status(results).value if results else "unknown"
        counts[state] += 1
        if state == "ok" and len(ctx.config.sites) > MAX_LINES:
            quiet += 1
            continue
        own = [*incidents.get(site.name, []), *incidents.get(quorum_subject(site.name), [])]
        line = _site_line(site.name, state, results, own)
        if verdict is not None:
            note = verdict.note()
            line += " · " + verdict.line() + (f" · {note}" if note else "")
        lines.append(line)
    if quiet:
        lines.append(f"…and {quiet} more sites, all OK." if lines else f"All {quiet} sites are OK.")
    lines += _host_lines(ctx, incidents)
    lines += [
        f"📡 {a.name} · {i.id} {i.state}: {i.summary}"
        for a in ctx.config.agents
        for i in incidents.get(agent_subject(a.name), [])
    ]
    total = len(ctx.config.sites)
    if total == 0:
        return Reply("No sites are configured.", lines=("Add [[sites]] entries to the config file.",)), never
    overall = "critical" if counts["critical"] else "warning" if counts["warning"] or counts["unknown"] else "ok"
    title = f"TLS status: {total} site{'s' if total != 1 else ''}, " + ", ".join(
        f"{n} {name}" for name, n in counts.items() if n
    )
    return Reply(title, TONE_OF_STATUS[overall], tuple(lines)), never


def _host_lines(ctx: Context, incidents: dict[str, list[Incident]]) -> list[str]:
    """A line per host: what its own scripts last said, and its own open incidents."""
    reports: dict[str, dict[str, HostReport]] = {}
    for report in ctx.store.host_reports():
        reports.setdefault(report.host, {})[report.kind] = report
    lines = []
    for host in ctx.config.hosts[:MAX_LINES]:
        own = [i for s in (f"host:{host.name}", *report_subjects(host.name)) for i in incidents.get(s, [])]
        parts = [f"🖥 {host.name}", layer_status(reports.get(host.name, {}))]
        parts += [f"{i.id} {i.state}: {i.summary}" for i in own]
        lines.append(" · ".join(parts))
    if len(ctx.config.hosts) > MAX_LINES:
        lines.append(f"…and {len(ctx.config.hosts) - MAX_LINES} more hosts.")
    return lines


def _verdict(ctx: Context, site: Site, local: list[ProbeResult], agent_rounds: list[VantageResults]) -> Verdict | None:
    """What each vantage point of a site watched from several sees (None for the others)."""
    if not watched_from_elsewhere(site):
        return None
    return judge(site, latest_rounds(site, agent_rounds, local), ctx.incidents.clock())


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
        verdict = _verdict(ctx, site, results, ctx.store.vantage_results(site.name))
        seen = [r for v in verdict.views for r in v.results] if verdict is not None else results
        state = worst_status(seen).value if seen else "unknown"
        fields = [Field("URL", site.url), Field("Host", site.host or "none configured")]
        if verdict is not None:
            fields.append(Field("Seen from", verdict.line()))
            note = verdict.note()
            if note:
                fields.append(Field("Quorum", f"{note} (confirm_from = {site.confirm_from})"))
        if site.host:
            reports = {r.kind: r for r in ctx.store.host_reports(site.host)}
            fields.append(Field("Layer 2", layer_status(reports)))
        if site.origins:
            fields.append(Field("Origins", ", ".join(site.origins)))
        for incident in [*ctx.store.open_incidents(site.name), *ctx.store.open_incidents(quorum_subject(site.name))]:
            since = f"{incident.opened_at:%Y-%m-%d %H:%M} UTC"
            fields.append(Field(incident.id, f"{incident.state} since {since}: {incident.summary}"))
        until = ctx.incidents.muted_until(site.name)
        if until:
            fields.append(Field("Muted until", until.strftime("%Y-%m-%d %H:%M UTC")))
        if verdict is not None:
            lines = tuple(f"{v.name}: {describe(r)}" for v in verdict.views for r in v.results) or ("Not probed yet.",)
        else:
            lines = tuple(describe(r) for r in results) or ("Not probed yet.",)
        return Reply(f"{site.name}: {state.upper()}", TONE_OF_STATUS[state], lines, tuple(fields))

    # a site watched from elsewhere is shown as its vantage points saw it, never probed from here first
    if watched_from_elsewhere(site):
        return Outcome(await asyncio.to_thread(detail))
    if await asyncio.to_thread(ctx.store.last_results, site.name):
        return Outcome(await asyncio.to_thread(detail))

    async def probe_first() -> Reply:
        await asyncio.to_thread(ctx.store.save_results, site.name, await ctx.prober.probe_site(site))
        return await asyncio.to_thread(detail)

    return Outcome(Reply(f"{site.name}: probing now…", Tone.INFO), probe_first)
