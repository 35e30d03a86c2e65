"""Two real `certops agent` processes (tokyo and frankfurt) against a real bot on loopback, one
site probed from "local", tokyo and frankfurt with confirm_from = 2. The chat messages the outbox
delivers are counted exactly: a failure seen from one vantage point pages no one, seen from two it
opens one incident; an agent killed is its own incident, and the quorum it leaves unreachable
says so."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from bot.core.model import IncidentState
from tests.agents.harness import SOURCES, Bot, config_text, rounds, running_bot
from tests.fakes.bot import say
from tests.fakes.tls import Behaviour, Lab

ALL_THREE = '["local", "tokyo", "frankfurt"]'


async def status(bot: Bot) -> str:
    reply = (await say(bot.core, "status www"))[-1]
    return "\n".join([reply.title, *(f"{f.label}: {f.value}" for f in reply.fields), *reply.lines])


async def overview(bot: Bot) -> str:
    reply = (await say(bot.core, "status"))[-1]
    return "\n".join([reply.title, *reply.lines])


def test_a_site_failing_from_tokyo_only_is_recorded_and_shown_and_delivers_no_message(lab: Lab, tmp_path: Path) -> None:
    endpoint = lab.serve("127.0.0.1", behaviour_from={SOURCES["tokyo"]: Behaviour.RESET_IN_HANDSHAKE})

    async def main() -> None:
        text = config_text(lab, endpoint.port, vantage=ALL_THREE, confirm_from=2)
        async with running_bot(text, tmp_path) as bot:
            bot.start_agent("tokyo", tmp_path)
            bot.start_agent("frankfurt", tmp_path)
            await bot.until("both agents' results", lambda: bot.reported("tokyo") and bot.reported("frankfurt"))
            await rounds(bot, 3)  # three rounds at the bot, each judging all three vantage points
            shown = await status(bot)
            assert "Seen from: local: OK · tokyo: site resets TLS handshakes · frankfurt: OK" in shown
            assert "Quorum: site resets TLS handshakes from tokyo only (confirm_from = 2)" in shown
            assert "tokyo: 🔴 public 127.0.0.1" in shown
            lines = await overview(bot)
            assert "site resets TLS handshakes from tokyo only" in lines
            await bot.core.watcher.idle()
            await asyncio.sleep(0.5)  # anything queued would be delivered by now
            assert bot.titles() == []  # exactly none: recorded, shown, no page
            assert bot.core.store.open_incidents() == []
            assert bot.core.store.site_health("www").failing is False
            metrics = bot.core.metrics.render().decode()
            assert 'certops_probe_problems_total{code="tls_handshake_reset",site="www",vantage="tokyo"}' in metrics
            assert 'vantage="local"' not in metrics.split("certops_probe_problems_total", 1)[1].split("# HELP", 1)[0]
            assert 'certops_agent_rounds_total{agent="frankfurt"}' in metrics

    asyncio.run(main())


def test_a_site_failing_from_tokyo_and_frankfurt_opens_one_incident_and_delivers_one_card(
    lab: Lab, tmp_path: Path
) -> None:
    reset = Behaviour.RESET_IN_HANDSHAKE
    endpoint = lab.serve("127.0.0.1", behaviour_from={SOURCES["tokyo"]: reset, SOURCES["frankfurt"]: reset})

    async def main() -> None:
        text = config_text(lab, endpoint.port, vantage=ALL_THREE, confirm_from=2)
        async with running_bot(text, tmp_path) as bot:
            bot.start_agent("tokyo", tmp_path)
            bot.start_agent("frankfurt", tmp_path)
            await bot.until("a card", lambda: len(bot.chat.delivered) >= 1)
            await rounds(bot, 3)  # still failing from both: the same incident, no second card
            await bot.core.watcher.idle()
            await asyncio.sleep(0.5)
            (incident,) = bot.core.store.open_incidents()
            assert incident.subject == "www"
            assert incident.problem == "tls_handshake_reset"
            assert (
                "Seen from: local: OK · tokyo: site resets TLS handshakes · frankfurt: site resets TLS handshakes"
                in (incident.details)
            )
            assert bot.chat.kinds() == ["new"]  # exactly one message: the card
            assert bot.titles() == [incident.summary]
            assert incident.summary.startswith("www: public 127.0.0.1: ")

            endpoint.behaviour_from.clear()  # the networks heal: the next agent rounds resolve it
            await bot.until(
                "the incident resolved",
                lambda: (bot.core.store.incident(incident.id) or incident).state is IncidentState.RESOLVED,
            )

    asyncio.run(main())


def test_an_agent_killed_opens_its_heartbeat_incident_and_the_quorum_it_leaves_unreachable_says_so(
    lab: Lab, tmp_path: Path
) -> None:
    endpoint = lab.serve("127.0.0.1", behaviour_from={SOURCES["frankfurt"]: Behaviour.RESET_IN_HANDSHAKE})

    async def main() -> None:
        text = config_text(lab, endpoint.port, vantage=ALL_THREE, confirm_from=2, report_interval="2s")
        async with running_bot(text, tmp_path) as bot:
            tokyo = bot.start_agent("tokyo", tmp_path)
            bot.start_agent("frankfurt", tmp_path)
            await bot.until("both agents' results", lambda: bot.reported("tokyo") and bot.reported("frankfurt"))
            await rounds(bot, 1)
            assert bot.titles() == []  # frankfurt alone sees the failure: no page
            last = bot.core.store.agent_reports()["tokyo"]
            tokyo.send_signal(signal.SIGKILL)
            tokyo.wait()

            async def two_cards() -> bool:
                await bot.core.watcher.tick()  # the incident clock, as the scheduler runs it every 15 s
                return len(bot.chat.delivered) >= 2

            deadline = asyncio.get_running_loop().time() + 40
            while not await two_cards():
                assert asyncio.get_running_loop().time() < deadline, bot.titles()
                await asyncio.sleep(0.5)
            await asyncio.sleep(1.0)
            await bot.core.watcher.tick()
            assert bot.chat.kinds() == ["new", "new"]  # exactly two messages, each a card
            assert sorted(bot.titles()) == sorted(
                [
                    f"the probe agent tokyo has not reported since {last:%H:%M} UTC",
                    f"www: quorum cannot be reached: tokyo has not reported since {last:%H:%M} UTC",
                ]
            )
            by_subject = {i.subject: i for i in bot.core.store.open_incidents()}
            assert set(by_subject) == {"agent:tokyo", "quorum:www"}
            assert by_subject["agent:tokyo"].problem == "agent_silent"
            assert by_subject["quorum:www"].problem == "quorum_unreachable"
            shown = await status(bot)
            assert f"quorum cannot be reached: tokyo has not reported since {last:%H:%M} UTC" in shown
            assert "frankfurt: site resets TLS handshakes" in shown

            bot.start_agent("tokyo", tmp_path)  # back: its next report resolves its heartbeat incident
            await bot.until(
                "the heartbeat incident resolved",
                lambda: not bot.core.store.open_incidents("agent:tokyo"),
            )

    asyncio.run(main())
