"""The console says who you are to [policy] (console:<login name>): when it starts, and whenever
a press is refused, with the identity to add to the approvers."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from bot.app import build_core
from bot.chat.console import ConsoleAdapter
from bot.config import parse_config
from commands.model import Button, Reply, Tone

POLICY = '[policy]\napprovers = ["console:alice"]\n'


async def console_with_a_button(tmp_path: Path, user: str, policy: str = POLICY) -> tuple[io.StringIO, ConsoleAdapter]:
    """A real core and a console as `user`, showing one repair button (request for host iis01)."""
    core = build_core(parse_config(policy, "test.toml"), database=str(tmp_path / "certops.db"))
    request = core.store.create_request(
        incident_id=None,
        site=None,
        host="iis01",
        action="repair-store",
        args=("3A" * 20,),
        target="3A" * 20,
        requested_by="test",
        ttl=600,
    )
    out = io.StringIO()
    console = ConsoleAdapter(core, user=user, stdin=io.StringIO(""), stdout=out)
    await console.post(Reply("www: repair", Tone.WARNING, buttons=(Button("Repair store", f"act:{request.token}"),)))
    return out, console


def test_a_refused_press_says_you_are_console_root_and_what_to_add_to_the_approvers(tmp_path: Path) -> None:
    async def scenario() -> str:
        out, console = await console_with_a_button(tmp_path, "root")
        try:
            assert await console.handle("press 1")
        finally:
            await console.core.worker.drain(5)
            console.core.close()
        return out.getvalue()

    text = asyncio.run(scenario())
    assert "⚠ Sorry, you are not on the approver list for repair-store.\n" in text
    assert (
        "  You are console:root here (the console is console:<your login name>); "
        'to approve from this console, add "console:root" to [policy] approvers.\n'
    ) in text


def test_a_press_refused_because_nobody_may_approve_also_names_the_identity(tmp_path: Path) -> None:
    async def scenario() -> str:
        out, console = await console_with_a_button(tmp_path, "operator", policy="")
        try:
            await console.handle("press 1")
        finally:
            console.core.close()
        return out.getvalue()

    text = asyncio.run(scenario())
    assert "Nobody may approve this yet: add approvers to [policy] in the config." in text
    assert 'add "console:operator" to [policy] approvers.' in text


def test_a_press_refused_for_another_reason_names_the_identity_without_the_approver_advice(tmp_path: Path) -> None:
    async def scenario() -> str:
        out, console = await console_with_a_button(tmp_path, "alice")
        console.buttons[2] = "act:no-such-token"
        try:
            await console.handle("press 2")
        finally:
            console.core.close()
        return out.getvalue()

    text = asyncio.run(scenario())
    assert "This button is not one certops knows" in text
    assert "  You are console:alice here (the console is console:<your login name>).\n" in text


def test_an_approvers_press_is_not_interrupted_by_the_identity_line(tmp_path: Path) -> None:
    async def scenario() -> str:
        out, console = await console_with_a_button(tmp_path, "alice")
        try:
            await console.handle("press 1")
            await console.core.worker.drain(10)
        finally:
            console.core.close()
        return out.getvalue()

    assert "You are console:" not in asyncio.run(scenario())


def test_the_console_names_its_identity_when_it_starts(tmp_path: Path) -> None:
    async def scenario() -> str:
        core = build_core(parse_config(POLICY, "test.toml"), database=str(tmp_path / "certops.db"))
        out = io.StringIO()
        try:
            await ConsoleAdapter(core, user="root", stdin=io.StringIO("quit\n"), stdout=out).run()
        finally:
            core.close()
        return out.getvalue()

    assert asyncio.run(scenario()).startswith("certops console (console:root): type /ssl help")


def test_docs_policy_shows_how_console_identities_work() -> None:
    policy = (Path(__file__).resolve().parents[2] / "docs" / "policy.md").read_text(encoding="utf-8")
    assert "## Console identities: `console:NAME`" in policy
    assert "`console:<login name>`" in policy
    assert 'approvers = ["slack:U0123ABCD", "console:alice"]' in policy
