"""Who may approve which host action, and turning presses into exactly one run.

Checked again at every press: the presser may approve this action, the button has not expired,
the incident is still open, and nobody ran it already. Every decision goes to the audit log.

Approvals count people, not identities: [policy.people] says which Slack and LINE ids are one
person, so one person holding two approver ids cannot satisfy a two-person rule alone.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.config import Policy
from bot.core.model import ActionRequest, Principal, RequestState
from bot.core.ports import StorePort
from bot.probe.certinfo import parse_iso_utc

GroupMembers = Callable[[str], Awaitable[set[str]]]  # Slack user group id -> member user ids
# the requester of the bot's own proposals (an incident's first diagnosis, a scheduled host
# check); a person's requester is always "platform:id", so nobody in chat can pass for it
BOT = "certops"


@dataclass(frozen=True)
class Decision:
    run: bool  # True exactly once per request: the caller runs the action now
    message: str  # a polite sentence for the presser or the card
    request: ActionRequest | None = None
    not_an_approver: bool = False  # refused because the presser may not approve this action


class Approvals:
    def __init__(self, store: StorePort, policy: Policy, group_members: GroupMembers | None = None) -> None:
        self.store = store
        self.policy = policy
        self.group_members = group_members

    def needs_approval(self, action: str) -> bool:
        return action not in self.policy.auto_heal

    def approvers_for(self, action: str) -> tuple[str, ...]:
        return self.policy.action_approvers.get(action, self.policy.approvers)

    def may_supersede(self, requester: str, action: str) -> bool:
        """Whether a new proposal from `requester` may replace the button waiting for `action`:
        the bot's own, or one from somebody listed as an approver of it. Synchronous (the store
        asks it inside a transaction), so membership of a slack-group: entry does not count here;
        such an approver's proposal keeps the waiting button, which they can still press."""
        return requester == BOT or requester in self.approvers_for(action)

    async def may_approve(self, who: Principal, action: str) -> bool:
        key = who.key
        if key is None:
            return False
        allowed = self.approvers_for(action)
        if key in allowed:
            return True
        if who.platform == "slack" and self.group_members is not None:
            for entry in allowed:
                if entry.startswith("slack-group:") and who.user_id in await self.group_members(entry[12:]):
                    return True
        return False

    async def press(self, who: Principal, token: str) -> Decision:
        """The store work runs in threads (it may wait for SQLite's write lock during a probe
        round); only the approver check, which may ask Slack for a user group, runs here."""
        early = await asyncio.to_thread(self._before_approval, who, token)
        if isinstance(early, Decision):
            return early
        request = early
        if not await self.may_approve(who, request.action):
            subject = f"{request.action} {request.target} on {request.host}"
            await asyncio.to_thread(
                self.store.audit, who.key or who.describe(), "press", subject, "refused", "not an approver"
            )
            if not self.approvers_for(request.action):
                return Decision(
                    False, "Nobody may approve this yet: add approvers to [policy] in the config.", request, True
                )
            return Decision(False, f"Sorry, you are not on the approver list for {request.action}.", request, True)
        return await asyncio.to_thread(self._approve, who, request)

    def _before_approval(self, who: Principal, token: str) -> Decision | ActionRequest:
        store = self.store
        actor = who.key or who.describe()
        request = store.request(token)
        if request is None:
            store.audit(actor, "press", token[:32], "refused", "unknown button")
            return Decision(False, "This button is not one certops knows; it may belong to an older setup.")
        subject = f"{request.action} {request.target} on {request.host}"
        if request.state != "pending":
            store.audit(actor, "press", subject, "refused", f"request is {request.state}")
            return Decision(False, _not_pending(request), request)
        if parse_iso_utc(request.expires_at) <= dt.datetime.now(dt.UTC):
            store.claim_request(token, RequestState.PENDING, RequestState.EXPIRED)
            store.audit(actor, "press", subject, "refused", "button expired")
            again = f"/ssl heal {request.site}" if request.site else f"/ssl audit {request.host}"
            return Decision(False, f"This button expired at {request.expires_at}. Run {again} for fresh ones.", request)
        if who.key is None:
            store.audit(actor, "press", subject, "refused", "presser unknown")
            return Decision(
                False,
                "I can't tell who pressed this, so it can't count as an approval. "
                "In LINE, approve in a 1:1 chat with the bot.",
                request,
            )
        return request

    def _approve(self, who: Principal, request: ActionRequest) -> Decision:
        store = self.store
        token = request.token
        actor = who.key or who.describe()
        subject = f"{request.action} {request.target} on {request.host}"
        if request.incident_id:
            incident = store.incident(request.incident_id)
            if incident is not None and not incident.is_open:
                store.claim_request(token, RequestState.PENDING, RequestState.SUPERSEDED)
                store.audit(actor, "press", subject, "refused", f"{incident.id} already resolved")
                return Decision(False, f"{incident.id} is already resolved; nothing to do.", request)
        approvals = store.add_approval(token, actor)
        needed = 2 if request.action in self.policy.two_person else 1
        people: dict[str, str] = {}  # person -> the identity they first approved with
        for identity in approvals:
            people.setdefault(self.policy.person(identity), identity)
        if len(people) < needed:
            person = self.policy.person(actor)
            earlier = people[person]
            if earlier != actor:
                store.audit(actor, "approve", subject, "refused", f"the same person as {earlier} ({person})")
                return Decision(
                    False,
                    f"Sorry, {earlier} already approved this and [policy.people] says that is you too ({person}); "
                    f"{request.action} needs a second, different person.",
                    request,
                )
            store.audit(actor, "approve", subject, "waiting", f"{len(people)} of {needed} approvals")
            return Decision(
                False,
                f"Approved by {who.describe()} ({len(people)} of {needed}); waiting for a different approver.",
                request,
            )
        started = store.start_request(token)
        if started == "busy":
            store.audit(actor, "approve", subject, "refused", "the same action is running")
            return Decision(
                False, f"{request.action} is already running on {request.host}; wait for its result.", request
            )
        if started != "started":
            store.audit(actor, "approve", subject, "refused", "already claimed")
            latest = store.request(token) or request
            return Decision(False, _not_pending(latest), latest)
        by = ", ".join(people.values())
        store.audit(actor, "approve", subject, "approved", f"approvers: {by}")
        return Decision(True, f"Approved by {by}. Running {request.action} on {request.host}…", request)


def _not_pending(request: ActionRequest) -> str:
    again = f"run /ssl heal {request.site}" if request.site else "run the command again"
    if request.state == "failed" and (request.result or "").startswith("interrupted"):
        return (
            f"{request.action} on {request.host} was interrupted when certops stopped; the host may or may "
            f"not have changed: {again} to see where it stands."
        )
    return {
        "running": f"{request.action} is already running on {request.host}.",
        "done": f"{request.action} already ran on {request.host}.",
        "failed": f"{request.action} already ran on {request.host} and failed; {again} for fresh buttons.",
        "expired": "This button has expired.",
        "superseded": "These buttons were replaced by newer ones; use the latest card.",
        "stale": f"The host changed since this was proposed, so it was not run; {again}.",
    }.get(request.state, f"This request is {request.state}.")
