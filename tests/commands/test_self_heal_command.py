"""/ssl install-self-heal: someone asks for Layer 2 on a host, an approver presses the button, the
simulated host gets the script, the report configuration and the task; the secret stays out of chat."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.app import build_core
from bot.config import parse_config
from commands.model import Reply, Tone
from host_actions.actions.self_heal_install import OLD_TASK, task_arguments
from host_actions.layer_config import SELF_HEAL_TASK
from tests.fakes.bot import BYSTANDER, audit_events, press, say
from tests.fakes.iis import SimulatedIIS

SECRET_ENV = "CERTOPS_TEST_CHAT_REPORT_SECRET"
SECRET = "7e9f4d8c9f2c1e7d4b8a6f3e0d5c2b1a-chat-secret"


def _config(iis: SimulatedIIS, *, reporting: bool = True) -> str:
    text = iis.config()
    if reporting:
        text = '[bot]\npublic_url = "https://certops.example.com"\n\n' + text
        text = text.replace("[policy]\n", f'report_secret_env = "{SECRET_ENV}"\n\n[policy]\n', 1)
    return text


def _text(replies: list[Reply]) -> str:
    return "\n".join(r.as_text() + " ".join(b.label + b.token for b in r.buttons) for r in replies)


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


def test_install_self_heal_offers_a_button_and_an_approver_s_press_installs_it(
    iis: SimulatedIIS, tmp_path: Path
) -> None:
    async def scenario() -> None:
        iis.model.add_certops_task()
        core = build_core(parse_config(_config(iis)), database=str(tmp_path / "db"))
        [card] = await say(core, "install-self-heal iis01")
        assert card.title == "Self-heal on iis01"
        assert card.lines[0] == (
            f"Install {SELF_HEAL_TASK} on iis01: every 60 min as SYSTEM, checks and reports, repairs nothing, "
            "and reports to certops."
        )
        [button] = card.buttons
        assert button.label == "Install self-heal"
        assert iis.winrm.requests == []  # nothing reaches the host before the press

        [refused] = await press(core, button.token, who=BYSTANDER)
        assert refused.private
        assert iis.model.task(SELF_HEAL_TASK) is None

        approved, result = await press(core, button.token)
        assert approved.title.startswith("Approved by slack:UAPPROVER1")
        assert result.title == "install-self-heal on iis01: done"
        assert result.tone is Tone.OK
        assert "report.key: written (the secret is not shown)" in result.lines[0]
        assert "\\certops\\certops hourly check: removed" in result.lines[0]
        task = iis.model.task(SELF_HEAL_TASK)
        assert task is not None
        assert task.actions[0].arguments == task_arguments(False)
        assert iis.model.task(OLD_TASK) is None
        assert iis.model.files["c:\\programdata\\certops\\report.key"] == SECRET
        events = audit_events(core, "event", "subject", "outcome")
        assert events[-2:] == [
            ("approve", "install-self-heal iis01 on iis01", "approved"),
            ("run", "install-self-heal iis01 on iis01", "ok"),
        ]
        everything = _text([card, refused, approved, result]) + repr(audit_events(core, "detail", "subject"))
        assert SECRET not in everything

    asyncio.run(scenario())


def test_install_self_heal_with_repair_proposes_and_installs_the_repairing_task(
    iis: SimulatedIIS, tmp_path: Path
) -> None:
    async def scenario() -> None:
        core = build_core(parse_config(_config(iis)), database=str(tmp_path / "db"))
        [card] = await say(core, "install-self-heal iis01 --repair")
        assert "checks and repairs broken key links" in card.lines[0]
        _, result = await press(core, card.buttons[0].token)
        assert result.title == "install-self-heal on iis01: done"
        task = iis.model.task(SELF_HEAL_TASK)
        assert task is not None
        assert task.actions[0].arguments == task_arguments(True)

    asyncio.run(scenario())


def test_install_self_heal_without_report_config_says_what_to_set_and_offers_nothing(
    iis: SimulatedIIS, tmp_path: Path
) -> None:
    async def scenario() -> None:
        core = build_core(parse_config(_config(iis, reporting=False)), database=str(tmp_path / "db"))
        [reply] = await say(core, "install-self-heal iis01")
        assert reply.private
        assert reply.buttons == ()
        assert reply.title == "Self-heal cannot be installed on iis01 yet"
        assert "[bot] public_url" in reply.lines[0]
        assert "report_secret_env or report_secret_file in the [[hosts]] entry for iis01" in reply.lines[0]
        assert iis.winrm.requests == []

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("install-self-heal iis02", 'No host named "iis02".'),
        ("install-self-heal iis01 --force", "Usage: /ssl install-self-heal <host> [--repair]"),
        ("install-self-heal", "Usage: /ssl install-self-heal <host> [--repair]"),
    ],
)
def test_a_mistyped_install_self_heal_is_a_private_sentence(
    iis: SimulatedIIS, tmp_path: Path, text: str, says: str
) -> None:
    async def scenario() -> None:
        core = build_core(parse_config(_config(iis)), database=str(tmp_path / "db"))
        [reply] = await say(core, text)
        assert reply.private
        assert reply.title.startswith(says)
        assert iis.winrm.requests == []

    asyncio.run(scenario())


def test_help_lists_install_self_heal(iis: SimulatedIIS, tmp_path: Path) -> None:
    async def scenario() -> None:
        core = build_core(parse_config(_config(iis)), database=str(tmp_path / "db"))
        [listing] = await say(core, "help")
        assert any(f.label == "/ssl install-self-heal <host> [--repair]" for f in listing.fields)
        [one] = await say(core, "help install-self-heal")
        assert one.title == "/ssl install-self-heal <host> [--repair]"
        assert "Nothing changes on the host until an approver presses the button" in " ".join(one.lines)

    asyncio.run(scenario())
