"""The platform-neutral shapes of chat: who asked what where, and what the bot answers.

Adapters (Slack, LINE, console) turn their events into these and render replies from them;
nothing here knows any chat platform.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from bot.core.model import Principal

__all__ = ["Button", "Conversation", "Field", "FollowUp", "Outcome", "Press", "Principal", "Reply", "Request", "Tone"]


@dataclass(frozen=True)
class Conversation:
    platform: str
    id: str  # Slack channel id, LINE group/room/user id, "console"
    is_group: bool = True


@dataclass(frozen=True)
class Request:
    """A typed command: `text` is everything after "/ssl", e.g. "heal shop"."""

    who: Principal
    where: Conversation
    text: str


@dataclass(frozen=True)
class Press:
    """A button press: `token` is the opaque id the button carried, nothing more is trusted."""

    who: Principal
    where: Conversation
    token: str


class Tone(StrEnum):
    INFO = "info"
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Button:
    label: str
    token: str  # opaque; the bot looks up what it means and who may press it
    style: str | None = None  # "primary" | "danger" | None
    confirm: str | None = None  # a question to confirm before the press is sent


@dataclass(frozen=True)
class Field:
    label: str
    value: str


@dataclass(frozen=True)
class Reply:
    title: str
    tone: Tone = Tone.INFO
    lines: tuple[str, ...] = ()
    fields: tuple[Field, ...] = ()
    buttons: tuple[Button, ...] = ()
    incident_id: str | None = None
    private: bool = False  # for the asker only (a refusal, a usage error): never replaces a shared card
    resolved: bool = False  # this reply reports that its incident was verified fixed and closed

    def as_text(self) -> str:
        """Plain text for consoles, notifications and fallbacks."""
        parts = [self.title, *self.lines, *(f"{f.label}: {f.value}" for f in self.fields)]
        if self.incident_id:
            parts.append(f"Incident {self.incident_id}")
        return "\n".join(parts)


FollowUp = Callable[[], Awaitable[Reply]]


@dataclass(frozen=True)
class Outcome:
    """What an adapter shows at once, and optionally slow work whose result replaces it later.

    The adapter answers within the platform's deadline with `reply`, then runs `follow_up` on the
    bot's own worker (never on the platform's listener threads) and updates its card with the
    reply the follow-up returns.
    """

    reply: Reply
    follow_up: FollowUp | None = field(default=None, compare=False)
    # a press refused because the presser may not approve it: an adapter may say how to become one
    not_an_approver: bool = False
