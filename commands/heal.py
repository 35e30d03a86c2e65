from __future__ import annotations

import asyncio

from bot.core.describe import finding_line
from commands.common import TONE_OF_STATUS, describe, find_site, host_of, status_of
from commands.context import Context
from commands.model import Field, Outcome, Reply, Request, Tone
from commands.proposals import buttons_and_notes
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
        lines = [describe(r) for r in results]
        incident = observation.incident
        try:
            diagnosis, requests, ran = await ctx.flows.diagnose_site(
                site, host.name, incident.id if incident else None, results, request.who.key or request.who.describe()
            )
        except HostActionError as exc:
            return Reply(f"{site.name}: cannot diagnose {host.name}", Tone.CRITICAL, (*lines, exc.message))
        critical = [f for f in diagnosis.findings if f.severity == "critical"]
        state = status_of(results).value
        lines += [finding_line(f) for f in diagnosis.findings] or [diagnosis.summary]
        buttons, notes = buttons_and_notes(requests, ran)
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
