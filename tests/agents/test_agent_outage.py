"""A probe agent through an outage of the bot: the bot cut off from it by a relay that stops
passing bytes (as a partition does, so every request hangs until its own deadline), the agent
probing on, its results buffered and bounded, and delivered once the bot is back."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from bot.agent import Agent
from tests.agents.harness import SECRETS, SOURCES, running_bot
from tests.fakes.partition import Partition
from tests.fakes.tls import Lab

SITES = 4
BUFFER = 6  # site rounds the agent keeps: fewer than the rounds of a 15-second cut


def config_with_sites(lab: Lab, port: int) -> str:
    sites = "".join(
        f'[[sites]]\nname = "s{i}"\nurl = "https://127.0.0.1:{port}/"\nca_file = "{lab.ca_file}"\n'
        'interval = "5s"\ntimeout = 3\nvantage = ["local", "tokyo"]\nconfirm_from = 1\n'
        for i in range(SITES)
    )
    return (
        '[bot]\nlisten = "127.0.0.1:0"\ndigest_at = ""\nrenotify = ""\n'
        '[[agents]]\nname = "tokyo"\nsecret_env = "CERTOPS_T_AGENT_TOKYO"\nreport_interval = "1m"\n'
        f"{sites}"
        '[policy]\napprovers = ["slack:UAPPROVER1"]\n'
    )


def accepted_rounds(metrics: bytes) -> float:
    prefix = 'certops_agent_rounds_total{agent="tokyo"} '
    line = next((x for x in metrics.decode().splitlines() if x.startswith(prefix)), prefix + "0")
    return float(line.removeprefix(prefix))


def test_an_agent_cut_off_from_the_bot_keeps_probing_keeps_its_newest_rounds_and_delivers_them_after(
    lab: Lab, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = lab.serve("127.0.0.1")

    async def main() -> None:
        async with running_bot(config_with_sites(lab, endpoint.port), tmp_path) as bot:
            port = int(bot.url.rsplit(":", 1)[1])
            with Partition(port) as relay:
                agent = Agent(
                    f"http://127.0.0.1:{relay.port}",
                    "tokyo",
                    SECRETS["tokyo"],
                    source_address=SOURCES["tokyo"],
                    buffer_rounds=BUFFER,
                )
                running = asyncio.create_task(agent.run())
                try:
                    await bot.until(
                        "the agent's first rounds", lambda: accepted_rounds(bot.core.metrics.render()) >= SITES
                    )
                    relay.cut()
                    kept_at_cut = agent.dropped + len(agent.buffer)
                    most = 0
                    loop = asyncio.get_running_loop()
                    with caplog.at_level(logging.WARNING, logger="certops.agent"):
                        until = loop.time() + 16
                        while loop.time() < until:  # three rounds of each site and more, none delivered
                            most = max(most, len(agent.buffer))
                            await asyncio.sleep(0.1)
                        before_heal = accepted_rounds(bot.core.metrics.render())
                        probed_in_cut = agent.dropped + len(agent.buffer) - kept_at_cut
                        dropped = agent.dropped
                        relay.heal()
                        await bot.until("the buffered rounds delivered", lambda: not agent.buffer, timeout=60)
                    delivered = accepted_rounds(bot.core.metrics.render()) - before_heal
                finally:
                    agent.stop()
                    await running

            assert probed_in_cut >= 3 * SITES  # it kept probing while the bot was away
            assert most <= BUFFER  # bounded
            assert dropped >= 1
            assert BUFFER <= delivered <= BUFFER + SITES  # the newest kept, plus rounds probed meanwhile
            logged = [r.getMessage() for r in caplog.records]
            assert any("cannot post results to the bot" in m for m in logged)
            assert any(f"the buffer keeps {BUFFER}" in m for m in logged)
            kept = {v.vantage: v.received_at for v in bot.core.store.vantage_results("s0")}
            assert "tokyo" in kept

    asyncio.run(main())
