"""Turns proposed host actions into approval buttons, and approved ones into a run, a check
from outside, and (when the site is healthy again) a resolved incident."""

from __future__ import annotations

import logging

from bot.store import ActionRequest
from commands.common import describe, host_facing
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
# actions whose target can go stale while a button waits (a newer certificate, another binding):
# the host is diagnosed again right before they run, and they run only if still proposed
RECHECKED = ("repair-store", "rebind")


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
    requester = who.key or who.describe()
    for proposal in proposals:
        action = proposal.action
        if action is None or (action, proposal.args) in seen:
            continue
        seen.add((action, proposal.args))
        label = LABELS.get(action, action)
        auto = not ctx.approvals.needs_approval(action)
        if not auto and len(buttons) >= MAX_BUTTONS:
            what = " ".join([label, *proposal.args])
            notes.append(f"Also proposed: {what} (after these, run the command again).")
            continue
        request = ctx.store.create_request(
            incident_id=incident_id,
            site=site,
            host=host,
            action=action,
            args=proposal.args,
            target=" ".join(proposal.args) or host,
            requested_by=requester,
            ttl=ctx.config.policy.button_ttl,
        )
        if auto:
            notes.append(await _auto_run(ctx, request, requester))
            continue
        style = "danger" if action in ("retire-task", "renew") else "primary"
        buttons.append(Button(label, f"act:{request.token}", style, confirm=f"{label} on {host}?"))
    return buttons, notes


async def _auto_run(ctx: Context, request: ActionRequest, requester: str) -> str:
    subject = f"{request.action} {request.target} on {request.host}"
    if ctx.store.start_request(request.token) != "started":
        ctx.store.audit("policy:auto_heal", "approve", subject, "refused", "the same action is running")
        return f"{request.action} is already running on {request.host}."
    ctx.store.audit("policy:auto_heal", "approve", subject, "approved", f"requested by {requester}")
    reply = await run_request(ctx, request)
    return " ".join([reply.title + ":", *reply.lines[:1]]) if reply.lines else reply.title


async def run_request(ctx: Context, request: ActionRequest) -> Reply:
    """Runs a claimed request once, then checks the site from outside before resolving anything."""
    subject = f"{request.action} {request.target} on {request.host}"
    try:
        stale = await _stale(ctx, request)
        if stale:
            ctx.store.claim_request(request.token, "running", "stale", stale)
            ctx.store.audit("certops", "run", subject, "refused", stale)
            again = f"/ssl heal {request.site}" if request.site else "the command"
            return Reply(
                f"{request.action} not run",
                Tone.WARNING,
                (stale, f"Run {again} again."),
                incident_id=request.incident_id,
            )
        outcome = await ctx.hosts.run(request.host, request.action, request.args)
    except HostActionError as exc:
        ctx.store.claim_request(request.token, "running", "failed", exc.message)
        ctx.store.audit("certops", "run", subject, "failed", f"{exc.kind}: {exc.message}")
        return Reply(
            f"{request.action} on {request.host} failed", Tone.CRITICAL, (exc.message,), incident_id=request.incident_id
        )
    except BaseException:
        # never leave a request "running" for ever: nothing would run it again
        ctx.store.claim_request(request.token, "running", "failed", "interrupted")
        ctx.store.audit("certops", "run", subject, "failed", "interrupted by an internal error or shutdown")
        raise
    if not ctx.store.claim_request(request.token, "running", "done" if outcome.ok else "failed", outcome.summary):
        log.warning("request %s was no longer running when its result came back", request.token)
    ctx.store.audit("certops", "run", subject, "ok" if outcome.ok else "failed", outcome.summary)
    lines = [outcome.summary, *outcome.lines[:10]]
    tone = Tone.OK if outcome.ok else Tone.CRITICAL
    resolved = False
    if request.site and outcome.ok:
        verdict, verify_lines, resolved = await verify_from_outside(ctx, request)
        lines += verify_lines
        tone = Tone.OK if verdict else Tone.WARNING
    title = f"{request.action} on {request.host}: {'done' if outcome.ok else 'failed'}"
    return Reply(title, tone, tuple(lines), incident_id=request.incident_id, resolved=resolved)


async def _stale(ctx: Context, request: ActionRequest) -> str | None:
    """Why the proposal no longer fits the host, or None when it still does."""
    if request.action not in RECHECKED:
        return None  # the host action itself checks its target against what the host reports
    probe = None
    site = ctx.config.site(request.site or "")
    if site is not None and request.action == "rebind":
        # a rebind may be proposed because of what the wire serves: look at the wire again too
        facing = host_facing(await ctx.prober.probe_site(site))
        probe = facing[0] if facing else None
    diagnosis = await ctx.hosts.diagnose(request.host, probe)
    if any((f.action, f.args) == (request.action, request.args) for f in diagnosis.findings):
        return None
    return f"The host changed since this was proposed: {request.action} {request.target} is no longer needed."


async def verify_from_outside(ctx: Context, request: ActionRequest) -> tuple[bool, list[str], bool]:
    """-> (healthy, lines to show, incident resolved now). Healthy only if every probe answered
    (warnings such as a CDN cache hit are not the incident), each probe of the host itself read a
    certificate, and the host agrees it is the newest one."""
    site = ctx.config.site(request.site or "")
    if site is None:
        return False, [], False
    results = await ctx.prober.probe_site(site)
    lines = ["Re-probed from outside:", *(describe(r) for r in results)]
    facing = host_facing(results)
    if any(r.status.value not in ("ok", "warning") for r in results):
        return False, [*lines, "Not resolved: the site still fails from outside."], False
    if not facing or any(r.certificate is None for r in facing):
        unknown = "Not resolved: no probe reached the host itself, so the certificate it serves is unknown."
        return False, [*lines, unknown], False
    try:
        diagnosis = await ctx.hosts.diagnose(request.host, facing[0])
    except HostActionError as exc:
        return False, [*lines, f"Not resolved: could not re-check {request.host}: {exc.message}"], False
    stale = [f for f in diagnosis.findings if f.code == "served_not_newest"]
    if stale:
        return False, [*lines, f"Not resolved: {stale[0].message}"], False
    resolved = bool(request.incident_id) and ctx.store.resolve_incident(request.incident_id or "")
    if resolved:
        ctx.store.audit("certops", "resolve", request.incident_id or "", "done", "verified from outside")
        lines.append(f"{request.incident_id} resolved: the newest certificate is served and the handshake works.")
    return True, lines, resolved
