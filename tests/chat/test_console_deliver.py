"""The console as the outbox's destination: cards, edits and re-notifications are printed, each
card gets a number of its own, and buttons on delivered cards are pressed with `press N`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bot.chat.base import DeliveryKind, Outgoing
from commands.model import Button, Outcome, Press, Reply, Request, Tone
from tests.chat.destinations import console_destination

CARD = Reply(
    "www: certificate expires in 3 days",
    Tone.WARNING,
    ("Not after 2030-01-04",),
    buttons=(Button("Acknowledge", "ack:INC-0007"),),
    incident_id="INC-0007",
)


@dataclass
class Presses:
    """A dispatcher that only notes which tokens were pressed."""

    tokens: list[str] = field(default_factory=list)

    async def press(self, press: Press) -> Outcome:
        self.tokens.append(press.token)
        return Outcome(Reply("Acknowledged by tester", Tone.OK))

    async def command(self, request: Request) -> Outcome:
        return Outcome(Reply("unused"))


def test_a_delivered_card_is_printed_and_numbered_and_its_edit_says_which_card_it_replaces() -> None:
    async def scenario() -> None:
        out, console = console_destination()
        first = await console.deliver(Outgoing(DeliveryKind.NEW, CARD))
        second = await console.deliver(Outgoing(DeliveryKind.NEW, Reply("Daily digest")))
        assert (first, second) == ("1", "2")
        assert await console.deliver(Outgoing(DeliveryKind.EDIT, Reply("Resolved: www", Tone.OK), first)) == first
        text = out.getvalue()
        assert "⚠ www: certificate expires in 3 days" in text
        assert "(card 1 updated)\n✔ Resolved: www" in text

    asyncio.run(scenario())


def test_a_renotification_is_printed_as_one_about_its_card() -> None:
    async def scenario() -> None:
        out, console = console_destination()
        ref = await console.deliver(Outgoing(DeliveryKind.NEW, CARD))
        assert await console.deliver(Outgoing(DeliveryKind.THREAD, Reply("www is still failing"), ref)) == ref
        assert "(re-notification about card 1)\nℹ www is still failing" in out.getvalue()

    asyncio.run(scenario())


def test_a_button_on_a_delivered_card_is_pressed_with_press_n() -> None:
    async def scenario() -> None:
        presses = Presses()
        out, console = console_destination(presses)
        await console.deliver(Outgoing(DeliveryKind.NEW, CARD))
        assert "[1] Acknowledge" in out.getvalue()
        assert await console.handle("press 1")
        assert presses.tokens == ["ack:INC-0007"]
        assert "Acknowledged by tester" in out.getvalue()

    asyncio.run(scenario())
