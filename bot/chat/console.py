"""A chat adapter on stdin/stdout: the same commands and buttons, with no chat account.

Type `/ssl status` (or just `status`), `press 2` to press button 2, `quit` to leave.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from typing import TYPE_CHECKING, TextIO

from bot.app import Core
from bot.chat.base import DeliveryKind, Outgoing
from commands.model import Conversation, Outcome, Press, Principal, Reply, Request

_MARK = {"info": "ℹ", "ok": "✔", "warning": "⚠", "critical": "✖"}


class ConsoleAdapter:
    platform = "console"

    def __init__(
        self,
        core: Core,
        *,
        user: str | None = None,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        echo: bool = False,
    ) -> None:
        self.core = core
        self.who = Principal("console", user or _login_name(), None)
        self.where = Conversation("console", "console", is_group=False)
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.echo = echo  # show what was read, when it comes from a script rather than a person
        self.buttons: dict[int, str] = {}  # number shown -> opaque token
        self._next_button = 1
        self._cards = 0

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def post(self, reply: Reply) -> str | None:
        self._show(reply)
        self._cards += 1
        return str(self._cards)

    async def update(self, ref: str, reply: Reply) -> None:
        self._show(reply)

    async def deliver(self, message: Outgoing) -> str | None:
        """The outbox's messages, printed: a card gets a number of its own, an edit says which
        card it replaces, a re-notification which card it is about. Buttons work as on any card."""
        if message.kind is DeliveryKind.EDIT and message.ref:
            self._show(message.reply, note=f"card {message.ref} updated")
            return message.ref
        if message.kind is DeliveryKind.THREAD:
            about = f" about card {message.ref}" if message.ref else ""
            self._show(message.reply, note=f"re-notification{about}")
            return message.ref
        return await self.post(message.reply)

    async def run(self) -> None:
        """Reads commands until end of input or `quit`."""
        self._write("certops console: type /ssl help, `press N` for a button, quit to leave.\n")
        loop = asyncio.get_running_loop()
        while True:
            self._write("> ")
            line = await loop.run_in_executor(None, self.stdin.readline)
            if not line:
                break
            if self.echo:
                self._write(line if line.endswith("\n") else line + "\n")
            if not await self.handle(line.strip()):
                break
        await self.core.worker.drain()

    async def handle(self, line: str) -> bool:
        """One line of input; False when the user wants to leave."""
        if not line:
            return True
        if line in ("quit", "exit"):
            return False
        words = line.split()
        if words[0] == "press":
            if len(words) != 2 or not words[1].isdigit() or int(words[1]) not in self.buttons:
                self._write(f"No button {' '.join(words[1:]) or '?'}; the numbers are in [brackets] on the cards.\n")
                return True
            token = self.buttons[int(words[1])]
            outcome = await self.core.dispatcher.press(Press(self.who, self.where, token))
        else:
            text = line.removeprefix("/ssl").strip()
            outcome = await self.core.dispatcher.command(Request(self.who, self.where, text))
        await self._deliver(outcome)
        return True

    async def _deliver(self, outcome: Outcome) -> None:
        self._show(outcome.reply)
        if outcome.follow_up is not None:
            done = asyncio.Event()

            async def show_later(reply: Reply) -> None:
                self._show(reply)
                done.set()

            self.core.worker.submit(outcome.follow_up, show_later)
            await done.wait()  # a console shows one conversation at a time

    def _show(self, reply: Reply, note: str | None = None) -> None:
        out = [f"({note})"] if note else []
        out.append(f"{_MARK[reply.tone.value]} {reply.title}")
        out += [f"  {line}" for line in reply.lines]
        out += [f"  {f.label}: {f.value}" for f in reply.fields]
        if reply.incident_id:
            out.append(f"  incident {reply.incident_id}")
        labels = []
        for button in reply.buttons:
            number = self._next_button
            self._next_button += 1
            self.buttons[number] = button.token
            labels.append(f"[{number}] {button.label}")
        if labels:
            out.append("  " + "   ".join(labels) + "   (type: press N)")
        self._write("\n".join(out) + "\n")

    def _write(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


if TYPE_CHECKING:
    from bot.chat.base import ChatAdapter

    def _is_a_chat_adapter(adapter: ConsoleAdapter) -> ChatAdapter:
        return adapter  # mypy checks here that ConsoleAdapter satisfies both protocols
