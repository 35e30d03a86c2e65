"""The mission's story over Slack, end to end: /ssl heal diagnoses the IIS host (the WinRM
simulator) whose renewed certificate lost its key link, the card offers Repair store, an approver
presses it, the store is repaired over WinRM, the site is probed again from outside and the
incident is resolved; the same card tells the whole story."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.probe import StaticResolver
from host_actions.simulator import WinRMSimulator
from host_actions.simulator.model import issuer_pem
from host_actions.simulator.tls import ModelTLSServer
from tests.chat.slack.harness import running_bot


def simulated_issuer(tmp_path: Path) -> str:
    """The simulator's CA certificate, so the probe can trust what the simulated host serves."""
    path = tmp_path / "sim-ca.pem"
    path.write_bytes(issuer_pem())
    return str(path)


def test_heal_then_an_approved_repair_resolves_the_incident_on_the_same_card(
    tmp_path: Path, sim: WinRMSimulator
) -> None:
    with ModelTLSServer(sim.model) as tls:  # the simulated host's IIS, serving what its bindings say
        sites = (
            f'[[sites]]\nname = "www"\nurl = "https://www.example.com:{tls.port}/"\n'
            f'ca_file = "{simulated_issuer(tmp_path)}"\nhost = "iis01"\ntimeout = 3\n'
        )
        resolver = StaticResolver({"www.example.com": "127.0.0.1"})

        async def scenario() -> None:
            async with running_bot(tmp_path, sites=sites, sim=sim, resolver=resolver) as bot:
                status, _, seconds = await bot.command("heal www")
                assert (status, seconds < 1.0) == (200, True)
                [posted] = await bot.api.wait_for("chat.postMessage")
                assert "Diagnosing www on iis01" in posted.body["text"]
                await bot.api.wait_for("chat.update", 1, timeout=30)
                card = bot.api.only_message()
                assert card.text.startswith("www: needs repair")
                assert "(Missing stored keyset)" in card.block_text()
                labels = {
                    e["text"]["text"]: e["value"] for b in card.blocks if b["type"] == "actions" for e in b["elements"]
                }
                assert "Repair store" in labels

                await bot.press(labels["Repair store"], f"{card.channel}:{card.ts}", user="U0BOB")

                await bot.api.wait_for("chat.update", 3, timeout=30)
                await bot.core.worker.drain()
                text = card.block_text()
                assert "Approved by slack:U0BOB" in text
                assert "repair-store on iis01: done" in text
                assert "INC-0001 resolved" in text
                assert card.text.startswith("Resolved: www: needs repair")  # the headline follows the outcome
                still_offered = [
                    e["text"]["text"] for b in card.blocks if b["type"] == "actions" for e in b["elements"]
                ]
                assert still_offered == [label for label in labels if label != "Repair store"]
                assert all(c.key_state == "ok" for c in sim.model.certs)
                assert sim.scripts_run.count("repair_store") == 1
                assert bot.core.store.incident("INC-0001").state == "resolved"  # type: ignore[union-attr]

        asyncio.run(scenario())
