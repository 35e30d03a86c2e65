"""A chat destination that records what the outbox delivers, for core-level tests (the Slack and
LINE stand-ins are exercised through their real adapters in tests/chat and tests/outbox)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.chat.base import DeliveryKind, Outgoing


@dataclass
class RecordingDestination:
    platform: str = "slack"
    delivered: list[Outgoing] = field(default_factory=list)

    async def deliver(self, message: Outgoing) -> str | None:
        self.delivered.append(message)
        if message.kind is DeliveryKind.NEW:
            return f"card-{len(self.delivered)}"
        return message.ref

    def kinds(self) -> list[str]:
        return [m.kind.value for m in self.delivered]

    def titles(self) -> list[str]:
        return [m.reply.title for m in self.delivered]
