from __future__ import annotations

import asyncio

from commands.common import TONE_OF_STATUS, describe, find_site, host_facing, host_of, status_of
from commands.context import Context
from commands.model import Field, Outcome, Reply, Request, Tone
from commands.proposals import offer
from commands.registry import command
from host_actions.errors import HostActionError


@command("heal", "heal <site>", min_args=1, max_args=1)
async def heal(ctx: Context, request: Request, args: list[str]) -> Outcome:
    """Probes the site, diagnoses its IIS host (read-only), and offers the repairs as buttons.

    Nothing changes on the host until an approver presses a button (or [policy] auto_heal
    allows the action). After a repair certops probes again from outside, and resolves the
    incident only when the newest certificate is served."""
    site = find_site(ctx, args[0])
    host = host_of(ctx, site)

    async def diagnose() -> Reply:
        results = await ctx.prober.probe_site(site)
        # a person asked: one failing round is enough to open (or join) the site's incident
        observation = await asyncio.to_thread(ctx.incidents.observe, site, results, actor="heal", confirmed=True)
        facing = host_facing(results)
        lines = [describe(r) for r in results]
        try:
            diagnosis = await ctx.hosts.diagnose(host.name, facing[0] if facing else None)
        except HostActionError as exc:
            return Reply(f"{site.name}: cannot diagnose {host.name}", Tone.CRITICAL, (*lines, exc.message))
        critical = [f for f in diagnosis.findings if f.severity == "critical"]
        state = status_of(results).value
        incident = observation.incident
        if incident is not None:
            finding_lines = [f"{'🔴' if f.severity == 'critical' else '🟡'} {f.message}" for f in diagnosis.findings]
            await asyncio.to_thread(ctx.incidents.record_diagnosis, incident.id, finding_lines or [diagnosis.summary])
        lines += [f"{'🔴' if f.severity == 'critical' else '🟡'} {f.message}" for f in diagnosis.findings]
        if not diagnosis.findings:
            lines.append(diagnosis.summary)
        buttons, notes = await offer(
            ctx,
            [f for f in diagnosis.findings if f.action],
            host=host.name,
            site=site.name,
            incident_id=incident.id if incident else None,
            who=request.who,
        )
        tone = Tone.CRITICAL if critical else TONE_OF_STATUS[state]
        fields = (Field("Host", host.name), Field("Findings", str(len(diagnosis.findings))))
        return Reply(
            f"{site.name}: {'needs repair' if buttons else 'diagnosed'}",
            tone,
            (*lines, *notes),
            fields,
            tuple(buttons),
            incident.id if incident else None,
        )

    return Outcome(Reply(f"Diagnosing {site.name} on {host.name}…", Tone.INFO), diagnose)
