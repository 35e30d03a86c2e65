"""Requests signed with the report scheme (bot.reports.signature): the hosts' `/api/report` and the
probe agents' `/api/agent/*`. One verification for both, in the order that costs an attacker the
most and the bot the least: the body's size, the sender, the timestamp, the signature, and only
then the replay guard, so that nothing unverified is ever written."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from bot.core.ports import StorePort, StoreRefused
from bot.reports.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_matches, timestamp_problem
from host_actions.target import Secret, SecretUnavailable

NOT_AUTHENTICATED = "not authenticated"


class Refused(Exception):
    """Why a signed request is refused: a fixed phrase (it keys the refusal log's throttle) and
    the HTTP status (401, or 503 when the bot cannot check it now)."""

    def __init__(self, reason: str, status: int = 401, *, answer: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        # what the sender is told: not which names exist ("unknown host" stays in the log)
        self.answer = answer or reason


def refusal(request: web.Request, refused: Refused) -> web.Response:
    """The answer to a refused signed request, with its one log line (bot.web.refuse)."""
    from bot.web import refuse  # bot.web imports the signed endpoints when it starts

    return refuse(request, refused.status, refused.reason, json_body={"error": refused.answer})


@dataclass(frozen=True)
class Endpoint:
    """What differs between the signed endpoints: the cap on a body, the namespace of the
    replay guard, and the phrases their refusals are logged and counted by."""

    cap: int
    replay_platform: str  # seen-events namespace: "report", "agent"
    too_large: str
    unavailable: str
    replayed: str


async def verified_body(
    request: web.Request,
    store: StorePort,
    endpoint: Endpoint,
    *,
    now: float,
    sender: str,
    secret_of: Callable[[str], Secret],
) -> bytes:
    """The body of a request `sender` signed; raises Refused. `secret_of(sender)` is the
    sender's secret; it raises Refused for a sender the config does not know."""
    # a body that declares more than the cap is left unread (bot.web.BODY_CAPS); a chunked one
    # was read up to BODY_LIMIT within the body timeout, and is measured here
    if request.content_length is not None and request.content_length > endpoint.cap:
        raise Refused(endpoint.too_large)
    body = await request.read()
    if len(body) > endpoint.cap:
        raise Refused(endpoint.too_large)
    secret = secret_of(sender)
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    problem = timestamp_problem(timestamp, now)
    if problem is not None:
        raise Refused(problem)
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not signature:
        raise Refused("no signature")
    try:
        key = secret.resolve().strip()  # as the host scripts read report.key: surrounding white space is no part of it
    except SecretUnavailable:
        raise Refused(endpoint.unavailable, 503) from None
    if not signature_matches(key, timestamp, body, signature):
        raise Refused("signature does not match")
    seen = f"{sender}:{request.method}:{timestamp}:{signature.lower()}"
    try:
        first = await asyncio.to_thread(store.first_time, endpoint.replay_platform, seen)
    except StoreRefused:
        raise Refused("store refused the request", 503) from None
    if not first:
        raise Refused(endpoint.replayed)
    return body
