from __future__ import annotations

import asyncio
import datetime as dt

from bot.config import Site
from bot.core.describe import finding_line
from bot.core.model import ActionRequest, Incident, RequestState
from bot.probe.certinfo import parse_iso_utc
from commands.common import TONE_OF_STATUS, admit, describe, find_site, host_of, requester, status_of
from commands.context import Context
from commands.model import Field, Outcome, Principal, Reply, Request, Tone
from commands.proposals import buttons_and_notes
from commands.registry import command
from commands.render import hhmm
from host_actions.errors import HostActionError
from host_actions.registry import label


@command("heal", "heal <site>", min_args=1, max_args=1)
async def heal(ctx: Context, request: Request, args: list[str]) -> Outcome:
    """Probes the site, diagnoses its IIS host (read-only), and offers the repairs as buttons.

    Nothing changes on the host until an approver presses a button (or [policy] auto_heal
    allows the action). After a repair certops probes again from outside, and resolves the
    incident only when the newest certificate is served. While a repair waits for approval,
    only an approver's heal brings fresh buttons; anyone else is shown what is waiting."""
    site = find_site(ctx, args[0])
    host = host_of(ctx, site)
    waiting = await _waiting_for_others(ctx, site, request.who)
    if waiting is not None:
        return Outcome(waiting)
    await admit(ctx, request.who, host.name, "heal")

    async def diagnose() -> Reply:
        results = await ctx.prober.probe_site(site)
        # a person asked: one failing round is enough to open (or join) the site's incident
        observation = await asyncio.to_thread(ctx.incidents.observe, site, results, actor="heal", confirmed=True)
        lines = [describe(r) for r in results]
        incident = observation.incident
        try:
            diagnosis, requests, ran = await ctx.flows.diagnose_site(
                site, host.name, incident.id if incident else None, results, requester(request.who)
            )
        except HostActionError as exc:
            return Reply(f"{site.name}: cannot diagnose {host.name}", Tone.CRITICAL, (*lines, exc.message))
        critical = [f for f in diagnosis.findings if f.severity == "critical"]
        state = status_of(results).value
        lines += [finding_line(f) for f in diagnosis.findings] or [diagnosis.summary]
        if diagnosis.elsewhere:
            card = f" (on its own card, {diagnosis.host_incident})" if diagnosis.host_incident else ""
            lines.append(f"Also on {host.name}, not {site.name}'s{card}:")
            lines += [finding_line(f) for f in diagnosis.elsewhere]
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


async def _waiting_for_others(ctx: Context, site: Site, who: Principal) -> Reply | None:
    """When the site's incident already has buttons waiting and `who` may approve none of them:
    a private note of what waits, instead of a diagnosis whose new buttons would replace the
    ones an approver is about to press (and another WinRM session on the host)."""
    incidents = await asyncio.to_thread(ctx.store.open_incidents, site.name)
    for incident in incidents:
        pending = await asyncio.to_thread(_pending, ctx, incident)
        if not pending:
            continue
        for waiting in pending:
            if await ctx.approvals.may_approve(who, waiting.action):
                return None
        await asyncio.to_thread(
            ctx.store.audit, requester(who), "heal", site.name, "waiting", f"{incident.id} has buttons for approvers"
        )
        what = "A repair" if len(pending) == 1 else f"{len(pending)} repairs"
        verb = "is" if len(pending) == 1 else "are"
        lines = [
            f"{label(r.action)} {r.target} on {r.host}, proposed by {r.requested_by}, "
            f"valid until {hhmm(parse_iso_utc(r.expires_at))} UTC."
            for r in pending
        ]
        return Reply(
            f"{what} for {site.name} {verb} already waiting for approval ({incident.id}); "
            "buttons stay with the approvers.",
            Tone.INFO,
            (
                *lines,
                f"An approver can press them on the {incident.id} card; an approver's /ssl heal brings fresh ones.",
            ),
            incident_id=incident.id,
            private=True,
        )
    return None


def _pending(ctx: Context, incident: Incident) -> list[ActionRequest]:
    now = dt.datetime.now(dt.UTC)  # the store dates buttons by the wall clock too
    return [
        r
        for r in ctx.store.requests_for(incident.id)
        if r.state is RequestState.PENDING and parse_iso_utc(r.expires_at) > now
    ]
