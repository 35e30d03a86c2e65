"""What every host action returns: one typed result the CLI, chat and the audit log read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from host_actions.model import to_jsonable


@dataclass(frozen=True)
class ActionResult:
    action: str
    host: str
    ok: bool
    summary: str  # one or two sentences for chat and the terminal
    details: dict[str, Any] = field(default_factory=dict)
    round_trips: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "host": self.host,
            "ok": self.ok,
            "summary": self.summary,
            "details": to_jsonable(self.details),
            "round_trips": self.round_trips,
        }


def tail(text: str, lines: int) -> list[str]:
    return [ln.rstrip() for ln in text.strip().splitlines()[-lines:]]
