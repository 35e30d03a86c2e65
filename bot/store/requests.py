"""Action requests and their approvals: a proposal turns into a run once, and never while the
same action is already running on the host.

A new proposal for exactly the same thing replaces the waiting button, but only when its
requester may do that (`may_supersede`, wired to the approvers policy by bot.app): otherwise
anyone in the channel could void the button an approver is about to press. Then the waiting
request itself is returned, so the newer card shows the very same, still valid, button.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import Row, func, or_, select
from sqlalchemy.engine import Connection

from bot.core.model import REQUEST_MOVES, ActionRequest, RequestState, TransitionRefused
from bot.store.base import Database
from bot.store.dialect import insert_ignore
from bot.store.schema import action_requests, approvals, audit, replicas
from bot.store.times import iso

_PENDING = RequestState.PENDING.value
_RUNNING = RequestState.RUNNING.value
INTERRUPTED = "interrupted: certops stopped while it ran"


# (requested_by, action) -> whether that requester's new proposal may replace a waiting one
SupersedeRule = Callable[[str, str], bool]


class RequestsStore(Database):
    # unset, anyone may (the port's original contract); a pure in-memory check, never a lookup
    may_supersede: SupersedeRule | None = None

    def create_request(
        self,
        *,
        incident_id: str | None,
        site: str | None,
        host: str,
        action: str,
        args: tuple[str, ...],
        target: str,
        requested_by: str,
        ttl: float,
    ) -> ActionRequest:
        """A new pending request; a pending one for exactly the same thing is superseded when
        `may_supersede` allows this requester, and returned instead of a new one when it does not
        (unless it has expired: a dead button is replaced whoever asks)."""
        token = secrets.token_urlsafe(12)
        # stored to the microsecond so that "oldest first" holds within a second; shown to the second
        now = dt.datetime.now(dt.UTC)
        args_json = json.dumps(list(args))
        rule = self.may_supersede
        replaces = rule is None or rule(requested_by, action)
        same = (
            action_requests.c.host == host,
            action_requests.c.action == action,
            action_requests.c.args_json == args_json,
            func.coalesce(action_requests.c.site, "") == (site or ""),
            action_requests.c.state == _PENDING,
        )
        with self._write() as connection:
            if not replaces:
                waiting = connection.execute(
                    select(action_requests)
                    .where(*same, action_requests.c.expires_at > now)
                    .order_by(action_requests.c.created_at.desc(), action_requests.c.token.desc())
                ).first()
                if waiting is not None:
                    return _request(waiting)
            connection.execute(action_requests.update().where(*same).values(state=RequestState.SUPERSEDED.value))
            connection.execute(
                action_requests.insert().values(
                    token=token,
                    incident_id=incident_id.upper() if incident_id else None,
                    site=site,
                    host=host,
                    action=action,
                    args_json=args_json,
                    target=target,
                    state=_PENDING,
                    requested_by=requested_by,
                    created_at=now,
                    expires_at=now + dt.timedelta(seconds=ttl),
                    result=None,
                )
            )
            return _request(_row(connection, token))

    def request(self, token: str) -> ActionRequest | None:
        with self._read() as connection:
            row = connection.execute(select(action_requests).where(action_requests.c.token == token)).first()
        return None if row is None else _request(row)

    def requests_for(self, incident_id: str) -> list[ActionRequest]:
        query = (
            select(action_requests)
            .where(action_requests.c.incident_id == incident_id.upper())
            .order_by(action_requests.c.created_at, action_requests.c.token)
        )
        with self._read() as connection:
            return [_request(row) for row in connection.execute(query)]

    def add_approval(self, token: str, principal: str) -> list[str]:
        with self._write() as connection:
            insert_ignore(
                connection,
                approvals,
                {"token": token, "principal": principal, "at": dt.datetime.now(dt.UTC)},
                keys=("token", "principal"),
            )
            rows = connection.execute(
                select(approvals.c.principal)
                .where(approvals.c.token == token)
                .order_by(approvals.c.at, approvals.c.principal)
            )
            return [str(principal) for principal in rows.scalars()]

    def start_request(self, token: str) -> str:
        """Returns "started", "busy" (an identical run is under way) or "taken" (not pending)."""
        with self._write() as connection:
            request = connection.execute(
                select(action_requests).where(action_requests.c.token == token).with_for_update()
            ).first()
            if request is None or request.state != _PENDING:
                return "taken"
            # every live request for this action on this host, locked: on a backend without a
            # database-wide write lock, two racers for the same action still go one after the other
            live = connection.execute(
                select(action_requests.c.args_json, action_requests.c.state)
                .where(
                    action_requests.c.host == request.host,
                    action_requests.c.action == request.action,
                    action_requests.c.state.in_([_PENDING, _RUNNING]),
                )
                .with_for_update()
            ).all()
            # flags such as --force do not make it another action: one renewal is one renewal
            target = _without_flags(request.args_json)
            if any(row.state == _RUNNING and _without_flags(row.args_json) == target for row in live):
                return "busy"
            started = connection.execute(
                action_requests.update()
                .where(action_requests.c.token == token, action_requests.c.state == _PENDING)
                .values(state=_RUNNING, runner=self.runner)
            )
            return "started" if started.rowcount == 1 else "taken"

    def claim_request(self, token: str, expected: RequestState, new: RequestState, result: str | None = None) -> bool:
        """Moves a request from `expected` to `new`; False when someone else got there first.
        A result of None keeps the one recorded before. A move the state machine does not allow
        (bot.core.model.REQUEST_MOVES) raises TransitionRefused: it is a bug, not a race."""
        if RequestState(new) not in REQUEST_MOVES.get(RequestState(expected), frozenset()):
            raise TransitionRefused(f"an action request cannot go from {expected} to {new}")
        values: dict[str, Any] = {"state": RequestState(new).value}
        if result is not None:
            values["result"] = result
        if RequestState(new) is RequestState.RUNNING:
            values["runner"] = self.runner  # so that only its own death fails it as interrupted
        with self._write() as connection:
            moved = connection.execute(
                action_requests.update()
                .where(action_requests.c.token == token, action_requests.c.state == RequestState(expected).value)
                .values(values)
            )
        return moved.rowcount == 1

    def fail_interrupted(self, gone_after: float | None = None) -> list[ActionRequest]:
        """Runs a previous process left "running" died with it. They are marked failed and audited (whether
        the host changed is unknown: the next diagnosis will tell), never run again.

        `gone_after` (replicas on one database): only the runs of replicas not seen for that many
        seconds (bot.store.lease records each replica's claims), and runs no replica owns."""
        query = select(action_requests.c.token).where(action_requests.c.state == _RUNNING)
        if gone_after is not None:
            alive = select(replicas.c.id).where(
                replicas.c.seen_at >= dt.datetime.now(dt.UTC) - dt.timedelta(seconds=gone_after)
            )
            query = query.where(or_(action_requests.c.runner.is_(None), action_requests.c.runner.not_in(alive)))
        with self._write() as connection:
            tokens = list(
                connection.execute(query.order_by(action_requests.c.created_at, action_requests.c.token)).scalars()
            )
            # one row at a time: only the runs this call moved are reported (another replica may
            # settle the same orphans at the same moment, and a run may finish in between)
            moved = [
                token
                for token in tokens
                if connection.execute(
                    action_requests.update()
                    .where(action_requests.c.token == token, action_requests.c.state == _RUNNING)
                    .values(state=RequestState.FAILED.value, result=INTERRUPTED)
                ).rowcount
                == 1
            ]
            failed = [_request(_row(connection, token)) for token in moved]
            # in the same transaction: no reader sees a request failed without its audit entry
            for request in failed:
                subject = f"{request.action} {request.target} on {request.host}"
                connection.execute(
                    audit.insert().values(
                        at=dt.datetime.now(dt.UTC),
                        actor="certops",
                        event="run",
                        subject=subject,
                        outcome="failed",
                        detail="interrupted",
                    )
                )
            return failed


def _row(connection: Connection, token: str) -> Row[Any]:
    return connection.execute(select(action_requests).where(action_requests.c.token == token)).one()


def _without_flags(args_json: str) -> list[str]:
    return [arg for arg in json.loads(args_json) if not arg.startswith("--")]


def _request(row: Row[Any]) -> ActionRequest:
    return ActionRequest(
        token=row.token,
        incident_id=row.incident_id,
        site=row.site,
        host=row.host,
        action=row.action,
        args=tuple(json.loads(row.args_json)),
        target=row.target,
        state=RequestState(row.state),
        requested_by=row.requested_by,
        created_at=iso(row.created_at),  # the short form callers have always parsed
        expires_at=iso(row.expires_at),
        result=row.result,
    )
