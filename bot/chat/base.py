"""What the bot needs from a chat platform, and what a platform needs from the bot."""

from __future__ import annotations

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


class ChatAdapter(Protocol):
    platform: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def post(self, reply: Reply) -> str | None:
        """Post to the configured incident destination; returns a reference for `update`."""
        ...

    async def update(self, ref: str, reply: Reply) -> None:
        """Replace an earlier post (Slack edits it in place; LINE cannot, and pushes only outcomes)."""
        ...
