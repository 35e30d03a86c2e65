"""On a full disk every command and button press is refused with one sentence that says why and
that nothing was changed, not an error reference (and never an exception an HTTP handler would
turn into a 500); once there is room again, commands work as before."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from commands.model import Request, Tone
from tests.fakes.bot import APPROVER, CHANNEL, make_core, press, say, site_config
from tests.fakes.tls import Lab
from tests.store.full_disk import FullDisk, full_disk

REFUSAL = "certops cannot save right now (the disk is full); nothing was changed."


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[FullDisk]:
    with full_disk(tmp_path) as prepared:
        yield prepared


def test_every_command_on_a_full_disk_is_refused_with_a_sentence_until_there_is_room(lab: Lab, disk: FullDisk) -> None:
    async def scenario() -> None:
        core = make_core(site_config(lab, 1, 1), disk.folder)
        try:
            disk.attach(core.store)
            disk.fill()
            for text in ("status", "heal www", "ack INC-0001", "mute www 1h", "help", "nonsense"):
                replies = await say(core, text)
                assert [(r.title, r.tone, r.private) for r in replies] == [(REFUSAL, Tone.CRITICAL, True)], text
            disk.free()
            [reply] = await say(core, "help")
            assert reply.title == "certops commands"
        finally:
            core.store.close()

    asyncio.run(scenario())


def test_a_button_press_on_a_full_disk_is_refused_with_the_same_sentence(lab: Lab, disk: FullDisk) -> None:
    async def scenario() -> None:
        core = make_core(site_config(lab, 1, 1), disk.folder)
        try:
            disk.attach(core.store)
            disk.fill()
            replies = await press(core, "act:0123456789abcdef")
            assert [(r.title, r.private) for r in replies] == [(REFUSAL, True)]
        finally:
            core.store.close()

    asyncio.run(scenario())


def test_a_follow_up_that_meets_a_full_disk_says_it_may_be_only_partly_recorded(lab: Lab, disk: FullDisk) -> None:
    if not disk.mounted:
        pytest.skip("needs a filesystem that can really be filled: the page limit fills only the audit log's pages")

    async def scenario() -> None:
        core = make_core(site_config(lab, 1, 1), disk.folder)
        try:
            outcome = await core.dispatcher.command(Request(APPROVER, CHANNEL, "status www"))
            assert outcome.reply.title == "www: probing now…"
            assert outcome.follow_up is not None
            disk.fill()  # between the answer and the probe's results being saved
            reply = await outcome.follow_up()
            assert reply.title == (
                "certops cannot save right now (the disk is full); /ssl status stopped and may be only "
                "partly recorded; check /ssl status once it is fixed."
            )
            assert reply.tone is Tone.CRITICAL
            assert not reply.private  # it replaces the "probing now…" card everybody saw
        finally:
            core.store.close()

    asyncio.run(scenario())
