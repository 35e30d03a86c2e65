"""The /ssl commands: each module registers its handler here; /ssl help is built from them."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.probe.text import printable
from commands.context import Context
from commands.model import Outcome, Request

Handler = Callable[[Context, Request, list[str]], Awaitable[Outcome]]


class UsageError(Exception):
    """The command was typed wrong; the message says how to type it."""


def shown(typed: str, limit: int = 60) -> str:
    """What someone typed, fit to quote back: control characters escaped, long text cut, so an
    answer never carries a 4,000-character argument or a terminal escape."""
    return printable(typed, limit)


@dataclass(frozen=True)
class Command:
    name: str
    usage: str  # e.g. "heal <site>"
    handler: Handler
    min_args: int
    max_args: int

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.handler) or ""
        return doc.splitlines()[0] if doc else ""

    @property
    def help(self) -> str:
        return inspect.getdoc(self.handler) or ""


COMMANDS: dict[str, Command] = {}


def command(name: str, usage: str, *, min_args: int = 0, max_args: int = 0) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        COMMANDS[name] = Command(name, usage, handler, min_args, max_args)
        return handler

    return register
