"""/ssl renew and /ssl audit against the simulated IIS host, through approval buttons."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.app import build_core
from bot.config import parse_config
from bot.probe import StaticResolver
from host_actions.simulator.scenarios import LEGACY_SCRIPT
from tests.fakes.bot import press, say
from tests.fakes.iis import SimulatedIIS

RESOLVER = StaticResolver({"www.example.com": "127.0.0.1"})


def test_renew_for_a_site_offers_a_forced_renewal_of_the_renewal_that_covers_it(
    iis: SimulatedIIS, tmp_path: Path
) -> None:
    async def scenario() -> None:
        core = build_core(parse_config(iis.config()), database=str(tmp_path / "db"), resolver=RESOLVER)
        before = len(iis.model.certs)
        first, card = await say(core, "renew www")
        assert first.title == "Looking up renewals on iis01…"
        assert card.lines[0] == "Renew mZ3Yk1fWbkW0yJbqv7NfVw"
        [button] = card.buttons
        assert button.label == "Renew now"
        assert len(iis.model.certs) == before  # nothing happens before the press
        _, result = await press(core, button.token)
        assert result.title == "renew on iis01: done"
        assert len(iis.model.certs) == before + 1

    asyncio.run(scenario())


def test_audit_of_an_unknown_host_gets_a_did_you_mean(iis: SimulatedIIS, tmp_path: Path) -> None:
    async def scenario() -> None:
        core = build_core(parse_config(iis.config()), database=str(tmp_path / "db"), resolver=RESOLVER)
        [reply] = await say(core, "audit iis02")
        assert reply.title == 'No host named "iis02". (did you mean "iis01"?) Hosts: iis01.'
        assert iis.winrm.requests == []

    asyncio.run(scenario())


def test_audit_flags_the_legacy_task_and_a_press_retires_it(iis: SimulatedIIS, tmp_path: Path) -> None:
    async def scenario() -> None:
        core = build_core(parse_config(iis.config()), database=str(tmp_path / "db"), resolver=RESOLVER)
        _, card = await say(core, "audit iis01")
        assert card.title == "Scheduled tasks on iis01"
        assert any("nginx" in line for line in card.lines)
        [button] = card.buttons
        assert button.label == "Disable legacy task"
        _, result = await press(core, button.token)
        assert result.title == "retire-task on iis01: done"
        task = iis.model.task("\\SSL-PostRenew")
        assert task is not None
        assert task.state == "Disabled"
        assert not iis.model.file_exists(LEGACY_SCRIPT)
        assert any(".deprecated." in name for name in iis.model.files)

    asyncio.run(scenario())
