"""Turns proposed host actions into approval buttons, and a run's result into a reply. The
deciding (what runs, once, and when an incident closes) is the core's: bot.core.actions."""

from __future__ import annotations

from bot.core.actions import RunResult
from bot.core.host_guard import HostGuard
from bot.core.model import ActionRequest
from commands.common import requester
from commands.context import Context, FindingView
from commands.model import Button, Principal, Reply, Tone
from commands.render import MAX_BUTTONS, button_for
from host_actions.registry import label


async def offer(
    ctx: Context,
    proposals: list[FindingView],
    *,
    host: str,
    site: str | None,
    incident_id: str | None,
    who: Principal,
) -> tuple[list[Button], list[str]]:
    """Buttons for the proposals that need approval; runs at once those the policy allows."""
    requests, ran = await ctx.flows.propose(
        proposals, host=host, site=site, incident_id=incident_id, requester=requester(who)
    )
    return buttons_and_notes(requests, ran)


def buttons_and_notes(requests: list[ActionRequest], ran: list[RunResult]) -> tuple[list[Button], list[str]]:
    """Buttons for the pending requests (as many as every chat shows), and a line for each run
    the policy allowed."""
    buttons = [button_for(r) for r in requests[:MAX_BUTTONS]]
    notes = [
        f"Also proposed: {' '.join([label(r.action), *r.args])} (after these, run the command again)."
        for r in requests[MAX_BUTTONS:]
    ]
    for result in ran:
        reply = render_run(result)
        notes.append(" ".join([reply.title + ":", *reply.lines[:1]]) if reply.lines else reply.title)
    return buttons, notes


async def run_request(ctx: Context, request: ActionRequest, approved_by: str) -> Reply:
    if isinstance(ctx.hosts, HostGuard):
        # a change is about to run: its recheck (host_actions.registry: rechecked) must see the host as
        # it is now, not as a diagnosis from before the button waited showed it
        ctx.hosts.forget(request.host)
    return render_run(await ctx.flows.run(request, approved_by))


def render_run(result: RunResult) -> Reply:
    request = result.request
    if result.stale:
        again = f"/ssl heal {request.site}" if request.site else "the command"
        return Reply(
            f"{request.action} not run",
            Tone.WARNING,
            (result.stale, f"Run {again} again."),
            incident_id=request.incident_id,
        )
    if result.error and not result.summary.endswith(("done", result.error)):
        return Reply(result.summary, Tone.CRITICAL, (result.error,), incident_id=request.incident_id)
    lines = [result.summary, *result.lines[:10]]
    tone = Tone.OK if result.ok else Tone.CRITICAL
    resolved = False
    if result.verification is not None:
        lines += result.verification.lines
        tone = Tone.OK if result.verification.healthy else Tone.WARNING
        resolved = result.verification.resolved
    title = f"{request.action} on {request.host}: {'done' if result.ok else 'failed'}"
    return Reply(title, tone, tuple(lines), incident_id=request.incident_id, resolved=resolved)
