"""Socket Mode end to end: the adapter dials the stand-in's WebSocket (apps.connections.open with
the app-level token), acks each envelope on the socket, and edits its cards over the Web API."""

from __future__ import annotations

import asyncio
from pathlib import Path

from commands.model import Button, Reply, Tone
from host_actions.simulator import WinRMSimulator
from tests.chat.slack.harness import CHANNEL, command_fields, press_payload, running_bot, site_toml
from tests.fakes.slack_api import APP_TOKEN
from tests.fakes.tls import Lab


def test_socket_mode_acks_a_command_on_the_socket_and_updates_its_card(lab: Lab, tmp_path: Path) -> None:
    endpoint = lab.serve("localhost")

    async def scenario() -> None:
        async with running_bot(tmp_path, mode="socket", sites=site_toml("www", endpoint.port, lab.ca_file)) as bot:
            assert {c.token for c in bot.api.calls_to("apps.connections.open")} == {APP_TOKEN}
            fields = command_fields("check www", user="U0ALICE", response_url=bot.api.response_url())

            ack = await bot.api.socket_send("slash_commands", fields)

            assert ack["payload"]["response_type"] == "ephemeral"
            assert "check www" in ack["payload"]["text"]
            [posted] = await bot.api.wait_for("chat.postMessage")
            assert posted.body["channel"] == CHANNEL
            await bot.api.wait_for("chat.update")
            assert bot.api.only_message().text.startswith("www: OK")

    asyncio.run(scenario())


def test_socket_mode_runs_an_approved_button_press_once(tmp_path: Path, sim: WinRMSimulator) -> None:
    broken = next(c for c in sim.model.certs if c.key_state != "ok")  # on iis01, the WinRM simulator

    async def scenario() -> None:
        async with running_bot(tmp_path, mode="socket", sim=sim) as bot:
            request = bot.core.store.create_request(
                incident_id=None,
                site=None,
                host="iis01",
                action="repair-store",
                args=(broken.thumbprint,),
                target=broken.thumbprint,
                requested_by="slack:U0ALICE",
                ttl=600,
            )
            card = Reply("www: needs repair", Tone.CRITICAL, buttons=(Button("Repair", f"act:{request.token}"),))
            ref = await bot.adapter.post(card)
            assert ref is not None
            channel, _, ts = ref.partition(":")
            payload = press_payload(
                f"act:{request.token}", channel, ts, user="U0BOB", response_url=bot.api.response_url()
            )

            ack = await bot.api.socket_send("interactive", payload)
            again = await bot.api.socket_send("interactive", payload)  # Slack redelivers an envelope acked late

            assert "payload" not in ack or not ack["payload"]
            assert again["envelope_id"] != ack["envelope_id"]
            await bot.api.wait_for("chat.update", 2)
            await bot.core.worker.drain()
            assert sim.scripts_run.count("repair_store") == 1
            assert broken.key_state == "ok"
            text = bot.api.only_message().block_text()
            assert "repair-store on iis01: done" in text
            assert f"iis01: repaired the key link of {broken.thumbprint}" in text
            assert bot.api.calls_to("response_url") == []

    asyncio.run(scenario())
