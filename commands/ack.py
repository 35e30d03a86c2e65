from __future__ import annotations

import asyncio

from commands.context import Context
from commands.model import Outcome, Reply, Request, Tone
from commands.registry import UsageError, command, shown


@command("ack", "ack <incident>", min_args=1, max_args=1)
async def ack(ctx: Context, request: Request, args: list[str]) -> Outcome:
    """Says you are on it: the incident stays open but stops asking for attention."""
    who = request.who.key or request.who.describe()
    incident, refused = await asyncio.to_thread(ctx.incidents.ack, args[0], who)
    if incident is None:
        open_ids = ", ".join(i.id for i in await asyncio.to_thread(ctx.store.open_incidents)) or "none"
        raise UsageError(f"No incident {shown(args[0])}. Open incidents: {open_ids}.")
    if refused:
        await asyncio.to_thread(ctx.store.audit, who, "ack", incident.id, "refused", f"incident is {incident.state}")
        return Outcome(Reply(f"{incident.id} is {refused}.", private=True, incident_id=incident.id))
    await asyncio.to_thread(ctx.store.audit, who, "ack", incident.id, "done")
    return Outcome(
        Reply(
            f"{incident.id} acknowledged by {request.who.describe()}.",
            Tone.INFO,
            (incident.summary,),
            incident_id=incident.id,
        )
    )
