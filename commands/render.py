"""Incident cards, re-notifications and the digest, rendered from what the core stored.

The outbox worker calls these at delivery time, so an edit always shows the card as it is now
(a card edited after a chat outage shows the latest state, not a stale one).
"""

from __future__ import annotations

import datetime as dt

from bot.config import Config
from bot.core.actions import named_in
from bot.core.describe import ICON, span
from bot.core.model import ActionRequest, Incident, IncidentState, MessageKind, OutboxMessage, RequestState, Step
from bot.core.ports import StorePort
from bot.probe import ProbeResult, worst_status
from commands.model import Button, Field, Reply, Tone
from host_actions.registry import ACTIONS

MAX_BUTTONS = 4  # LINE's buttons template takes four actions; Slack would take more
SHOWN_STEPS = {
    Step.DETECTED,
    Step.DIAGNOSED,
    Step.APPROVED,
    Step.RUNNING,
    Step.ACTED,
    Step.ESCALATED,
    Step.FLAPPING,
    Step.ACKED,
    Step.ANNOUNCED,
    Step.RESOLVED,
}


def button_for(request: ActionRequest) -> Button:
    action = ACTIONS.get(request.action)
    label = action.label if action else request.action
    named = named_in(request.target)
    if named:
        label += f" ({named.split('.')[0]})"  # "Renew now (api)": which renewal, of several
    style = "danger" if action and action.danger else "primary"
    return Button(label, f"act:{request.token}", style, confirm=f"{label} on {request.host}?")


def hhmm(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%H:%M")


def card(store: StorePort, incident: Incident) -> Reply:
    """The incident's card: what is wrong (edge and origin together), what the host showed, the
    timeline with who did what, the buttons still waiting, and how it ended."""
    resolved = incident.state is IncidentState.RESOLVED
    lines: list[str] = list(incident.details)
    if incident.diagnosis:
        lines += [f"{incident.host or 'Host'} diagnosis:", *incident.diagnosis]
    transitions = store.transitions(incident.id)
    shown = [t for t in transitions if t.step in SHOWN_STEPS]
    # a followed renewal notes "running" again at every look: the timeline shows the first of a run
    timeline = [
        f"{t.step.value} {hhmm(t.at)}" + (f" ({t.actor})" if t.step in (Step.ACKED, Step.APPROVED) else "")
        for i, t in enumerate(shown)
        if i == 0 or t.step is not shown[i - 1].step
    ]
    if timeline:
        lines.append("Timeline: " + " · ".join(timeline))
    acted = [t for t in transitions if t.step is Step.ACTED]
    lines += [t.reason for t in acted[-3:]]
    latest = next((t for t in reversed(transitions) if t.step in (Step.RUNNING, Step.ACTED)), None)
    if latest is not None and latest.step is Step.RUNNING:
        lines.append(latest.reason)  # what the host says while it is still at it
    if resolved and incident.resolution:
        lines.append(incident.resolution)
    fields = [Field("Incident", incident.id), Field("State", incident.state.value)]
    if incident.host:
        fields.append(Field("Host", incident.host))
    detected = incident.opened_at
    if incident.failing_since is not None:
        fields.append(Field("Time to detect", span(detected - incident.failing_since)))
    if resolved and incident.resolved_at is not None:
        fields.append(Field("Time to repair", span(incident.resolved_at - detected)))
    buttons: list[Button] = []
    if not resolved:
        pending = [r for r in store.requests_for(incident.id) if r.state is RequestState.PENDING]
        buttons = [button_for(r) for r in pending[:MAX_BUTTONS]]
    title = f"{'Resolved: ' if resolved else ''}{incident.summary}"
    tone = Tone.OK if resolved else Tone.CRITICAL if incident.severity.value == "critical" else Tone.WARNING
    return Reply(title, tone, tuple(lines), tuple(fields), tuple(buttons), incident.id, resolved=resolved)


def renotify(incident: Incident, now: dt.datetime) -> Reply:
    open_for = span(now - incident.opened_at)
    return Reply(
        f"Still open after {open_for}: {incident.summary}",
        Tone.CRITICAL,
        ("Nobody has acknowledged it: /ssl ack " + incident.id + " to say you are on it.",),
        incident_id=incident.id,
    )


def digest(config: Config, store: StorePort) -> Reply:
    """The daily digest: sites, nearest expiry, open incidents. "All quiet" is a message too."""
    by_site: dict[str, list[ProbeResult]] = {}
    for result in store.last_results():
        by_site.setdefault(result.target.site or result.target.hostname, []).append(result)
    days = {
        name: min(r.certificate.days_left for r in results if r.certificate)
        for name, results in by_site.items()
        if any(r.certificate for r in results)
    }
    statuses = {
        site.name: worst_status(by_site[site.name]).value if site.name in by_site else "unknown"
        for site in config.sites
    }
    incidents = store.open_incidents()
    total = len(config.sites)
    nearest = min(days.items(), key=lambda kv: kv[1], default=None)
    near = f"nearest expiry {nearest[0]} in {nearest[1]} days" if nearest else "no certificate read yet"
    lines = [
        f"{ICON[state]} {name}" + (f" · {days[name]} days left" if name in days else "")
        for name, state in statuses.items()
        if state != "ok"
    ]
    lines += [f"{i.id} {i.state.value} since {i.opened_at:%Y-%m-%d %H:%M} UTC: {i.summary}" for i in incidents]
    if not incidents and not lines:
        title = f"All quiet: {total} site{'s' if total != 1 else ''}, {near}"
        return Reply(title, Tone.OK)
    title = f"Daily digest: {total} sites, {len(incidents)} open incident(s), {near}"
    return Reply(title, Tone.CRITICAL if incidents else Tone.WARNING, tuple(lines[:40]))


def render_message(config: Config, store: StorePort, message: OutboxMessage) -> tuple[Reply, bool] | None:
    """(reply, notable) for an outbox row, or None when there is nothing to say any more."""
    if message.kind is MessageKind.DIGEST:
        return digest(config, store), True
    incident = store.incident(message.incident_id) if message.incident_id else None
    if incident is None:
        text = message.payload.get("text")
        return (Reply(str(text)), True) if text else None
    if message.kind is MessageKind.RENOTIFY:
        if incident.state is not IncidentState.OPEN:  # acknowledged or closed while it waited
            return None
        return renotify(incident, message.created_at), True
    return card(store, incident), bool(message.payload.get("notable", True))
