from __future__ import annotations

from commands.common import admit, find_host, host_of
from commands.context import Context, FindingView
from commands.model import Outcome, Reply, Request, Tone
from commands.proposals import offer
from commands.registry import UsageError, command, shown
from host_actions.errors import HostActionError


@command("renew", "renew <site|host>", min_args=1, max_args=1)
async def renew(ctx: Context, request: Request, args: list[str]) -> Outcome:
    """Offers a win-acme renewal: forced for the renewal that covers a site, or every due one on a host."""
    name = args[0]
    site = ctx.config.site(name)
    if site is None and ctx.config.host(name) is None:
        raise UsageError(f'"{shown(name)}" is neither a site nor a host. Try /ssl status for the names.')
    host = host_of(ctx, site) if site else find_host(ctx, name)
    await admit(ctx, request.who, host.name, "renew")

    async def propose() -> Reply:
        if site is None:
            proposal = FindingView("renew_due", "info", f"Renew every due certificate on {host.name}", "renew", ())
        else:
            try:
                renewals = await ctx.hosts.renewals(host.name)
            except HostActionError as exc:
                return Reply(f"Cannot read the renewals on {host.name}", Tone.CRITICAL, (exc.message,))
            match = next((r for r in renewals if site.hostname.lower() in (h.lower() for h in r.hosts)), None)
            if match is None:
                return Reply(
                    f"No win-acme renewal on {host.name} covers {site.hostname}",
                    Tone.WARNING,
                    ("Create one with wacs.exe on the host first.",),
                )
            proposal = FindingView("renew_site", "info", f"Renew {match.id}", "renew", (match.id, "--force"))
        buttons, notes = await offer(
            ctx, [proposal], host=host.name, site=site.name if site else None, incident_id=None, who=request.who
        )
        return Reply(f"Renewal on {host.name}", Tone.INFO, (proposal.message, *notes), buttons=tuple(buttons))

    return Outcome(Reply(f"Looking up renewals on {host.name}…", Tone.INFO), propose)
