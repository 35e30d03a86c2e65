"""A chat adapter on stdin/stdout: the same commands and buttons, with no chat account.

Type `/ssl status` (or just `status`), `press 2` to press button 2, `quit` to leave.
"""

from __future__ import annotations

import asyncio
import getpass
import io
import re
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, TextIO

from bot.app import Core
from bot.chat.base import DeliveryKind, Outgoing
from bot.logs import WithFields, logger
from commands.model import Conversation, Outcome, Press, Principal, Reply, Request, Tone

_MARK = {"info": "ℹ", "ok": "✔", "warning": "⚠", "critical": "✖"}
LINE_LIMIT = 4096  # characters; the longest command is a few dozen
_BUTTON_NUMBER = re.compile(r"[0-9]{1,9}")  # ASCII digits only: "²".isdigit() is True, int("²") fails
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # but tab and newline

log = logger(__name__)
log.addFilter(WithFields(platform="console"))


class _TooLong:
    """What _read_line returns for a line beyond LINE_LIMIT (its text is dropped unread)."""


TOO_LONG = _TooLong()


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
        """Reads commands until end of input or `quit`; nothing typed ends the process otherwise."""
        self._write(f"certops console ({self.who.key}): type /ssl help, `press N` for a button, quit to leave.\n")
        if isinstance(self.stdin, io.TextIOWrapper):
            # bytes that are not UTF-8 (a pasted Latin-1 text) become U+FFFD instead of ending the loop
            self.stdin.reconfigure(errors="replace")
        loop = asyncio.get_running_loop()
        while True:
            self._write("> ")
            line = await loop.run_in_executor(None, self._read_line)
            if line is None:
                break
            if self.echo and isinstance(line, str):
                self._write(_printable(line)[:200] + "\n")
            if not await self._handle_safely(line):
                break
        await self.core.worker.drain()

    def _read_line(self) -> str | _TooLong | None:
        """One line, None at end of input; a line longer than LINE_LIMIT is read to its end and
        answered as too long, so a runaway paste neither fills the memory nor runs as commands."""
        try:
            line = self.stdin.readline(LINE_LIMIT + 1)
            if not line:
                return None
            if len(line) <= LINE_LIMIT or line.endswith("\n"):
                return line
            while True:
                rest = self.stdin.readline(LINE_LIMIT)
                if not rest or rest.endswith("\n"):
                    break
        except (OSError, ValueError) as exc:  # input closed under us, or bytes no decoder accepts
            log.warning("console input ended: %s", type(exc).__name__)
            return None
        return TOO_LONG

    async def _handle_safely(self, line: str | _TooLong) -> bool:
        if isinstance(line, _TooLong):
            self._write(f"That line is longer than {LINE_LIMIT:,} characters; commands are short. Type /ssl help.\n")
            return True
        try:
            return await self.handle(line)
        except Exception:
            # the console is the bot's only way in when it has no chat: one bad line must not end it
            log.exception("console input failed")
            self._write("Sorry, that failed on certops's side; the log has the details. Type /ssl help.\n")
            return True

    async def handle(self, line: str) -> bool:
        """One line of input; False when the user wants to leave."""
        line = _CONTROL.sub("", line).replace("\t", " ").strip()
        if not line:
            return True
        if line.lower() in ("quit", "exit"):
            return False
        words = line.split()
        if words[0].lower() == "press":
            number = words[1] if len(words) == 2 and _BUTTON_NUMBER.fullmatch(words[1]) else None
            if number is None or int(number) not in self.buttons:
                asked = _printable(" ".join(words[1:]))[:40] or "?"
                self._write(f"No button {asked}; the numbers are in [brackets] on the cards (type: press N).\n")
                return True
            token = self.buttons[int(number)]
            outcome = await self.core.dispatcher.press(Press(self.who, self.where, token))
            outcome = self._with_identity(outcome)
        else:
            text = line.removeprefix("/ssl").strip()
            outcome = await self.core.dispatcher.command(Request(self.who, self.where, text))
        await self._deliver(outcome)
        return True

    async def _deliver(self, outcome: Outcome) -> None:
        self._show(outcome.reply)
        if outcome.follow_up is not None:

            async def show_later(reply: Reply) -> None:
                self._show(reply)

            # a console shows one conversation at a time; the task ends after show_later ran, or
            # with the follow-up's exception (an event set by show_later would then wait forever)
            await self.core.worker.submit(outcome.follow_up, show_later)

    def _with_identity(self, outcome: Outcome) -> Outcome:
        """A refused press says who pressed: policy names this console by its login name."""
        title = outcome.reply.title
        if outcome.follow_up is not None or outcome.reply.tone is not Tone.WARNING or title.startswith("Approved by"):
            return outcome  # it runs, or it counted and waits for a second approver
        lines = (*outcome.reply.lines, self.identity_line(about_approvers=outcome.not_an_approver))
        return replace(outcome, reply=replace(outcome.reply, lines=lines))

    def identity_line(self, *, about_approvers: bool = True) -> str:
        """Who this console is to [policy]: console:<the login name> (or the `user` it was given)."""
        identity = self.who.key or f"console:{self.who.user_id}"
        line = f"You are {identity} here (the console is console:<your login name>)"
        if about_approvers:
            return f'{line}; to approve from this console, add "{identity}" to [policy] approvers.'
        return f"{line}."

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
        # a reply may quote what a remote server sent (a certificate's name): never let it steer the terminal
        self._write("\n".join(_CONTROL.sub("", line) for line in out) + "\n")

    def _write(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()


def _printable(text: str) -> str:
    return _CONTROL.sub("", text).replace("\n", "").replace("\t", " ")


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


if TYPE_CHECKING:
    from bot.chat.base import ChatAdapter

    def _is_a_chat_adapter(adapter: ConsoleAdapter) -> ChatAdapter:
        return adapter  # mypy checks here that ConsoleAdapter satisfies both protocols
