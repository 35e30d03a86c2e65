from __future__ import annotations

import asyncio

from commands.common import admit, find_host, requester
from commands.context import Context
from commands.model import Outcome, Reply, Request, Tone
from commands.proposals import offer
from commands.registry import command
from host_actions.errors import HostActionError


@command("audit", "audit <host>", min_args=1, max_args=1)
async def audit(ctx: Context, request: Request, args: list[str]) -> Outcome:
    """Lists scheduled tasks outside \\Microsoft\\ that fail or point at things gone since a migration."""
    host = find_host(ctx, args[0])
    await admit(ctx, request.who, host.name, "audit")

    async def run() -> Reply:
        try:
            outcome = await ctx.hosts.run(host.name, "audit-tasks", ())
        except HostActionError as exc:
            return Reply(f"Cannot audit {host.name}", Tone.CRITICAL, (exc.message,))
        await asyncio.to_thread(
            ctx.store.audit, requester(request.who), "audit-tasks", host.name, "ok", outcome.summary
        )
        buttons, notes = await offer(
            ctx, list(outcome.proposals), host=host.name, site=None, incident_id=None, who=request.who
        )
        tone = Tone.WARNING if outcome.proposals else Tone.OK
        return Reply(
            f"Scheduled tasks on {host.name}",
            tone,
            (outcome.summary, *outcome.lines[:15], *notes),
            buttons=tuple(buttons),
        )

    return Outcome(Reply(f"Auditing scheduled tasks on {host.name}…", Tone.INFO), run)
