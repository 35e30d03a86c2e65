from __future__ import annotations

from commands.context import Context
from commands.model import Outcome, Reply, Request, Tone
from commands.registry import UsageError, command


@command("ack", "ack <incident>", min_args=1, max_args=1)
async def ack(ctx: Context, request: Request, args: list[str]) -> Outcome:
    """Says you are on it: the incident stays open but stops asking for attention."""
    incident = ctx.store.incident(args[0])
    if incident is None:
        open_ids = ", ".join(i.id for i in ctx.store.open_incidents()) or "none"
        raise UsageError(f"No incident {args[0]}. Open incidents: {open_ids}.")
    who = request.who.key or request.who.describe()
    if not ctx.store.ack_incident(incident.id, who):
        ctx.store.audit(who, "ack", incident.id, "refused", f"incident is {incident.state}")
        return Outcome(Reply(f"{incident.id} is already {incident.state}.", private=True, incident_id=incident.id))
    ctx.store.audit(who, "ack", incident.id, "done")
    return Outcome(
        Reply(
            f"{incident.id} acknowledged by {request.who.describe()}.",
            Tone.INFO,
            (incident.summary,),
            incident_id=incident.id,
        )
    )
