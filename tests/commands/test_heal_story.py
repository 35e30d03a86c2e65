"""The mission's story end to end: a renewal broke the key link, the origin resets every
handshake; /ssl heal diagnoses the host over WinRM and offers the repair; an approver presses
it; certops re-probes from outside and resolves the incident only when the newest certificate
is served."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.app import build_core
from bot.config import parse_config
from bot.probe import StaticResolver
from commands.model import Tone
from tests.fakes.bot import BYSTANDER, audit_events, open_incident, press, say
from tests.fakes.iis import SimulatedIIS
from tests.fakes.tls import Lab

RESOLVER = StaticResolver({"www.example.com": "127.0.0.1"})


def test_heal_offers_the_repair_and_a_press_fixes_and_resolves_the_incident(iis: SimulatedIIS, tmp_path: Path) -> None:
    async def scenario() -> None:
        core = build_core(parse_config(iis.config()), database=str(tmp_path / "db"), resolver=RESOLVER)
        broken = next(c for c in iis.model.certs if c.key_state != "ok")

        first, card = await say(core, "heal www")
        assert first.title == "Diagnosing www on iis01…"
        assert card.tone is Tone.CRITICAL
        assert card.incident_id is not None
        assert any("reset the connection (TCP RST) during the TLS handshake" in line for line in card.lines)
        labels = [b.label for b in card.buttons]
        assert labels[0] == "Repair store"
        assert "Add post-renew step (www)" in labels  # which renewal: a host may have several
        assert "Disable legacy task" in labels
        assert all(b.token.startswith("act:") and len(b.token) < 40 for b in card.buttons)
        assert iis.tls.handshakes[-1] == ("www.example.com", "reset")

        [refused] = await press(core, card.buttons[0].token, who=BYSTANDER)
        assert refused.private
        assert broken.key_state == "missing_keyset"

        approved, result = await press(core, card.buttons[0].token)
        assert approved.title.startswith("Approved by slack:UAPPROVER1")
        assert result.title == "repair-store on iis01: done"
        assert result.tone is Tone.OK
        assert broken.key_state == "ok"
        assert iis.tls.handshakes[-1] == ("www.example.com", f"served:{broken.thumbprint}")
        assert f"{card.incident_id} resolved: the newest certificate is served and the handshake works." in result.lines
        incident = core.store.incident(card.incident_id)
        assert incident is not None
        assert incident.state == "resolved"
        events = audit_events(core, "event", "outcome")
        assert events[-4:] == [("press", "refused"), ("approve", "approved"), ("run", "ok"), ("resolve", "done")]

    asyncio.run(scenario())


def test_a_repair_that_does_not_fix_the_site_leaves_the_incident_open(iis: SimulatedIIS, tmp_path: Path) -> None:
    async def scenario() -> None:
        core = build_core(parse_config(iis.config()), database=str(tmp_path / "db"), resolver=RESOLVER)
        broken = next(c for c in iis.model.certs if c.key_state != "ok")
        broken.key_lost = True  # the key file is gone for good: certutil cannot rebuild the link
        _, card = await say(core, "heal www")
        _, result = await press(core, card.buttons[0].token)
        assert result.tone is not Tone.OK
        assert card.incident_id is not None
        incident = core.store.incident(card.incident_id)
        assert incident is not None
        assert incident.is_open

    asyncio.run(scenario())


def test_auto_heal_policy_repairs_without_a_button(iis: SimulatedIIS, tmp_path: Path) -> None:
    async def scenario() -> None:
        config = parse_config(iis.config(policy='auto_heal = ["repair-store"]\n'))
        core = build_core(config, database=str(tmp_path / "db"), resolver=RESOLVER)
        _, card = await say(core, "heal www")
        assert "Repair store" not in [b.label for b in card.buttons]
        assert any(line.startswith("repair-store on iis01: done: iis01: repaired the key link") for line in card.lines)
        assert all(c.key_state == "ok" for c in iis.model.certs)
        assert ("policy:auto_heal", "approve", "approved") in audit_events(core, "actor", "event", "outcome")

    asyncio.run(scenario())


def test_a_repair_button_whose_target_was_fixed_meanwhile_does_not_run(iis: SimulatedIIS, tmp_path: Path) -> None:
    async def scenario() -> None:
        core = build_core(parse_config(iis.config()), database=str(tmp_path / "db"), resolver=RESOLVER)
        _, card = await say(core, "heal www")
        for cert in iis.model.certs:
            cert.key_state = "ok"  # someone ran certutil by hand while the button waited
        _, result = await press(core, card.buttons[0].token)
        assert result.title == "repair-store not run"
        assert "is no longer needed" in result.lines[0]
        assert "repair_store" not in iis.winrm.scripts_run

    asyncio.run(scenario())


def test_an_incident_is_not_resolved_when_only_a_cdn_edge_was_probed(
    iis: SimulatedIIS, lab: Lab, tmp_path: Path
) -> None:
    async def scenario() -> None:
        edge = lab.serve("www.example.com", headers={"CF-Cache-Status": "HIT"})
        text = iis.config().replace(f"https://www.example.com:{iis.tls.port}/", f"https://www.example.com:{edge.port}/")
        text = text.replace(f'origins = ["127.0.0.1:{iis.tls.port}"]\n', "")
        text = text.replace(f'ca_file = "{iis.ca_file}"', f'ca_file = "{lab.ca_file}"')
        core = build_core(parse_config(text), database=str(tmp_path / "db"), resolver=RESOLVER)
        incident = open_incident(core, "www", "reset at origin")
        thumb = next(c.thumbprint for c in iis.model.certs if c.key_state != "ok")
        request = core.store.create_request(
            incident_id=incident.id, site="www", host="iis01", action="repair-store", args=(thumb,),
            target=thumb, requested_by="slack:UAPPROVER1", ttl=60,
        )  # fmt: skip
        _, result = await press(core, f"act:{request.token}")
        assert result.title == "repair-store on iis01: done"
        assert "Not resolved: no probe reached the host itself" in result.lines[-1]
        assert core.store.incident(incident.id).is_open  # type: ignore[union-attr]

    asyncio.run(scenario())
