"""What the bot needs from a chat platform, and what a platform needs from the bot."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from commands.model import Outcome, Press, Reply, Request


class ChatSetupError(Exception):
    """A chat platform refused our configuration (e.g. a revoked token); the message says where
    the setting came from, never a secret."""


class Dispatcher(Protocol):
    """The platform-neutral core (commands.dispatch.CommandDispatcher). Both calls return fast:
    anything slow comes back as `Outcome.follow_up`."""

    async def command(self, request: Request) -> Outcome: ...

    async def press(self, press: Press) -> Outcome: ...


# outbox delivery ------------------------------------------------------------------------------


class DeliveryKind(StrEnum):
    NEW = "new"  # post a card (or a digest, a notice) to the platform's incident destination
    EDIT = "edit"  # replace the card at `ref`
    THREAD = "thread"  # a new message under the card at `ref` (a re-notification); in the channel without one


@dataclass(frozen=True)
class Outgoing:
    """One message the outbox worker hands to a destination."""

    kind: DeliveryKind
    reply: Reply
    ref: str | None = None  # the card's reference, as an earlier NEW returned it
    retry_key: str = ""  # the same on every attempt of one outbox row (LINE delivers a retried push once)
    notable: bool = True  # False for a minor edit: a platform that cannot edit (LINE) skips it
    # What the message is, the same on every attempt ("card:INC-…" for an incident's card, the
    # row's retry key otherwise): a platform that can search its own history tags posts with it.
    key: str = ""
    # When an earlier attempt began, if one did: it may have landed with the answer lost (the
    # replica died, the call timed out), so a platform that can look first does, not to post twice.
    tried_since: dt.datetime | None = None


# Answers worth trying again: a timeout, a rate limit, and any 5xx (the chat's own trouble)
TRANSIENT_STATUSES = frozenset({408, 429})


def is_transient(status: int) -> bool:
    return status in TRANSIENT_STATUSES or status >= 500


class DeliveryError(Exception):
    """A delivery that did not happen. `permanent`: no retry will change the answer (a channel
    that does not exist, a revoked token); otherwise the worker tries again later, never before
    `retry_after` seconds when the platform said so. The message is safe to show and to store:
    an error code or an HTTP status, never a token or request data."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class Destination(Protocol):
    """Where the outbox worker delivers one platform's messages (each adapter is one)."""

    platform: str

    async def deliver(self, message: Outgoing) -> str | None:
        """Sends it, or raises DeliveryError. Returns the card's reference for NEW (None when the
        platform has none); for EDIT and THREAD the card's reference, which may be a new one
        (a card deleted meanwhile was posted afresh)."""
        ...


class ChatAdapter(Destination, Protocol):
    """A chat platform: the outbox's destination, plus what the command flows use directly."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def post(self, reply: Reply) -> str | None:
        """Post to the configured incident destination; returns a reference for `update`."""
        ...

    async def update(self, ref: str, reply: Reply) -> None:
        """Replace an earlier post (Slack edits it in place; LINE cannot, and pushes only outcomes)."""
        ...


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (Slack and LINE send seconds; an HTTP date is not used)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
