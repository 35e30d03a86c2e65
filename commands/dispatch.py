"""The platform-neutral core: a typed command or a button press in, an Outcome out.

Users get a short sentence (and an incident id where there is one); when something breaks on
our side they get a reference, and the operators' log gets the traceback under that reference.
When the database cannot be written (a full disk, a read-only file) they get a refusal that
says so, and every command after it is refused the same way until the database is writable:
certops never acts without the audit line and the state it would have written.
"""

from __future__ import annotations

import asyncio
import secrets

from bot.config.reader import did_you_mean
from bot.core.model import Cause, Step
from bot.core.ports import StoreRefused
from bot.logs import logger
from commands import ack, audit, check, heal, help, mute, renew, self_heal, status  # noqa: F401 - they register themselves
from commands.context import Context
from commands.model import FollowUp, Outcome, Press, Reply, Request, Tone
from commands.proposals import run_request
from commands.registry import COMMANDS, UsageError, shown

log = logger(__name__)


class CommandDispatcher:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def command(self, request: Request) -> Outcome:
        words = request.text.split() or ["help"]
        who = request.who.key or request.who.describe()
        spec = COMMANDS.get(words[0].lower())
        try:
            await asyncio.to_thread(
                self.ctx.store.audit, who, "command", f"/ssl {request.text.strip()}"[:200], "received", request.where.id
            )
            if spec is None:
                hint = did_you_mean(words[0], list(COMMANDS))
                raise UsageError(f"There is no /ssl {shown(words[0])}.{hint} Try /ssl help.")
            args = words[1:]
            if not spec.min_args <= len(args) <= spec.max_args:
                raise UsageError(f"Usage: /ssl {spec.usage}")
            outcome = await spec.handler(self.ctx, request, args)
        except UsageError as exc:
            return Outcome(Reply(str(exc), Tone.WARNING, private=True))
        except Exception as exc:
            refusal = store_refusal(exc)
            if refusal is not None:
                return Outcome(_cannot_save(refusal, "nothing was changed"))
            return Outcome(_internal_error(f"/ssl {words[0]}", private=True))
        return Outcome(outcome.reply, _guarded(outcome.follow_up, f"/ssl {words[0]}"))

    async def press(self, press: Press) -> Outcome:
        token = press.token.removeprefix("act:")
        try:
            decision = await self.ctx.approvals.press(press.who, token)
        except Exception as exc:
            refusal = store_refusal(exc)
            if refusal is not None:
                return Outcome(_cannot_save(refusal, "nothing was changed"))
            return Outcome(_internal_error("button press", private=True))
        request = decision.request
        if not decision.run or request is None:
            return Outcome(
                Reply(decision.message, Tone.WARNING, private=True), not_an_approver=decision.not_an_approver
            )

        approved_by = press.who.key or press.who.describe()
        if request.incident_id:
            try:
                await asyncio.to_thread(
                    self.ctx.incidents.note,
                    request.incident_id,
                    Step.APPROVED,
                    f"{request.action} {request.target} approved",
                    approved_by,
                    cause=Cause.PERSON,
                    notable=False,
                )
            except Exception as exc:
                refusal = store_refusal(exc)
                if refusal is None:
                    return Outcome(_internal_error("button press", private=True))
                # the approval is stored, the incident's timeline is not: acting now would leave
                # the host changed with half a record, and the run's own writes would fail too
                return Outcome(
                    _cannot_save(refusal, f"{request.action} was not run; ask for it again once there is room")
                )

        async def run() -> Reply:
            return await run_request(self.ctx, request, approved_by)

        reply = Reply(decision.message, Tone.INFO, incident_id=request.incident_id)
        return Outcome(reply, _guarded(run, f"{request.action} on {request.host}"))


def store_refusal(exc: BaseException) -> str | None:
    """Why the store refused ("the disk is full"); None for any other exception."""
    return exc.reason if isinstance(exc, StoreRefused) else None


def _cannot_save(refusal: str, consequence: str, *, private: bool = True) -> Reply:
    log.warning("refused: the database cannot be used (%s)", refusal)
    return Reply(f"certops cannot save right now ({refusal}); {consequence}.", Tone.CRITICAL, private=private)


def _internal_error(what: str, *, private: bool = False) -> Reply:
    """`private` for an immediate answer (only the asker sees it, no shared card is touched);
    a failed follow-up replaces its own card, so everybody watching it learns it failed."""
    ref = f"ERR-{secrets.token_hex(3).upper()}"
    log.exception("%s failed (reference %s)", what, ref)
    message = f"Sorry, {what} failed on certops's side (reference {ref}); the operators' log has the details."
    return Reply(message, Tone.CRITICAL, private=private)


def _guarded(follow_up: FollowUp | None, what: str) -> FollowUp | None:
    if follow_up is None:
        return None

    async def run() -> Reply:
        try:
            return await follow_up()
        except Exception as exc:
            refusal = store_refusal(exc)
            if refusal is None:
                return _internal_error(what)
            # the work may have gone ahead before the write that failed: say so, not "nothing"
            return _cannot_save(
                refusal,
                f"{what} stopped and may be only partly recorded; check /ssl status once it is fixed",
                private=False,
            )

    return run
