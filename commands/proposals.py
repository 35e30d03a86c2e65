"""Turns proposed host actions into approval buttons, and approved ones into a run, a check
from outside, and (when the site is healthy again) a resolved incident."""

from __future__ import annotations

import logging

from bot.store import ActionRequest
from commands.common import describe, status_of
from commands.context import Context, FindingView
from commands.model import Button, Principal, Reply, Tone
from host_actions.errors import HostActionError

log = logging.getLogger(__name__)

LABELS = {
    "repair-store": "Repair store",
    "rebind": "Fix binding",
    "verify-binding": "Verify binding",
    "renew": "Renew now",
    "retire-task": "Disable legacy task",
    "add-post-renew-step": "Add post-renew step",
}
MAX_BUTTONS = 4  # LINE's buttons template takes four actions; Slack would take more


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
    buttons: list[Button] = []
    notes: list[str] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for proposal in proposals:
        if proposal.action is None or (proposal.action, proposal.args) in seen:
            continue
        seen.add((proposal.action, proposal.args))
        request = ctx.store.create_request(
            incident_id=incident_id,
            site=site,
            host=host,
            action=proposal.action,
            args=proposal.args,
            target=" ".join(proposal.args) or host,
            requested_by=who.key or who.describe(),
            ttl=ctx.config.policy.button_ttl,
        )
        if not ctx.approvals.needs_approval(proposal.action):
            if ctx.store.claim_request(request.token, "pending", "running"):
                ctx.store.audit("policy:auto_heal", "approve", f"{request.action} {request.target}", "approved")
                notes.append((await run_request(ctx, request)).title)
            continue
        if len(buttons) < MAX_BUTTONS:
            label = LABELS.get(proposal.action, proposal.action)
            style = "danger" if proposal.action in ("retire-task", "renew") else "primary"
            buttons.append(Button(label, f"act:{request.token}", style, confirm=f"{label} on {host}?"))
    return buttons, notes


async def run_request(ctx: Context, request: ActionRequest) -> Reply:
    """Runs a claimed request once, then checks the site from outside before resolving anything."""
    subject = f"{request.action} {request.target} on {request.host}"
    try:
        outcome = await ctx.hosts.run(request.host, request.action, request.args)
    except HostActionError as exc:
        ctx.store.claim_request(request.token, "running", "failed", exc.message)
        ctx.store.audit("certops", "run", subject, "failed", f"{exc.kind}: {exc.message}")
        return Reply(
            f"{request.action} on {request.host} failed", Tone.CRITICAL, (exc.message,), incident_id=request.incident_id
        )
    ctx.store.claim_request(request.token, "running", "done" if outcome.ok else "failed", outcome.summary)
    ctx.store.audit("certops", "run", subject, "ok" if outcome.ok else "failed", outcome.summary)
    lines = [outcome.summary, *outcome.lines[:10]]
    tone = Tone.OK if outcome.ok else Tone.CRITICAL
    if request.site and outcome.ok:
        verdict, verify_lines = await verify_from_outside(ctx, request)
        lines += verify_lines
        tone = Tone.OK if verdict else Tone.WARNING
    return Reply(
        f"{request.action} on {request.host}: {'done' if outcome.ok else 'failed'}",
        tone,
        tuple(lines),
        incident_id=request.incident_id,
    )


async def verify_from_outside(ctx: Context, request: ActionRequest) -> tuple[bool, list[str]]:
    """Healthy only if no probe is critical and the host agrees the newest certificate is served."""
    site = ctx.config.site(request.site or "")
    if site is None:
        return False, []
    results = await ctx.prober.probe_site(site)
    lines = ["Re-probed from outside:", *(describe(r) for r in results)]
    # warnings (a cache hit at the CDN edge, an edge certificate nearing renewal) are not the incident
    if status_of(results).value == "critical":
        return False, [*lines, "Not resolved: the site still fails from outside."]
    diagnosis = await ctx.hosts.diagnose(
        request.host, next((r for r in results if r.target.via == "origin"), results[0])
    )
    stale = [f for f in diagnosis.findings if f.code == "served_not_newest"]
    if stale:
        return False, [*lines, f"Not resolved: {stale[0].message}"]
    if request.incident_id and ctx.store.resolve_incident(request.incident_id):
        ctx.store.audit("certops", "resolve", request.incident_id, "done", "verified from outside")
        lines.append(f"{request.incident_id} resolved: the newest certificate is served and the handshake works.")
    return True, lines
