"""An approved action on a host that never finishes answering: the run ends by its deadline,
the request ends failed, the card says so, and the host stays usable for the next action."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.app import Core, build_core
from bot.config import parse_config
from bot.core.model import Step
from bot.core.services import FindingView
from commands.model import Press
from host_actions.winrm_client import CLEANUP_SECONDS, GRACE_SECONDS
from tests.core.test_watching import deliver_due
from tests.fakes.bot import APPROVER, CHANNEL, SIM_PASSWORD_ENV, host_config, press
from tests.fakes.destination import RecordingDestination
from tests.fakes.hostile_winrm import HostileWinRM
from tests.fakes.tls import Lab

DEADLINE = 1.5  # seconds; the config's own minimum is 5, so the test sets the Host's directly
LATEST = DEADLINE + max(GRACE_SECONDS, CLEANUP_SECONDS) + 1


@pytest.fixture
def trickling(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileWinRM]:
    # the pre-run recheck's Receive is answered; the repair's own first Receive trickles for ever
    with HostileWinRM("trickle", after=1, times=1, interval=0.1, limit=8.0) as server:
        monkeypatch.setenv(SIM_PASSWORD_ENV, server.sim.password)
        yield server


def core_for(lab: Lab, tmp_path: Path, server: HostileWinRM) -> tuple[Core, RecordingDestination]:
    text = (
        f'[[sites]]\nname = "www"\nurl = "https://localhost:1/"\nca_file = "{lab.ca_file}"\nhost = "iis01"\n'
        + host_config(server.url, server.sim.username)
        + '[policy]\napprovers = ["slack:UAPPROVER1", "slack:UAPPROVER2"]\n'
    )
    config = parse_config(text, "test.toml")
    config = dataclasses.replace(config, hosts=tuple(dataclasses.replace(h, timeout=DEADLINE) for h in config.hosts))
    core = build_core(config, database=str(tmp_path / "certops.db"))
    chat = RecordingDestination()
    core.attach(chat)
    return core, chat


def broken_thumbprint(server: HostileWinRM) -> str:
    return next(c.thumbprint for c in server.sim.model.certs if c.key_state != "ok")


def test_an_approved_repair_on_a_host_that_never_finishes_answering_ends_failed_with_its_card_updated(
    lab: Lab, tmp_path: Path, trickling: HostileWinRM
) -> None:
    async def scenario() -> None:
        core, chat = core_for(lab, tmp_path, trickling)
        thumb = broken_thumbprint(trickling)
        # the host's incident, as the scheduled host check opens it: its card is announced
        finding = FindingView("newest_cert_key_unusable", "critical", "the key of the newest certificate is missing")
        incident, opened = core.incidents.observe_host("iis01", [finding])
        assert opened
        assert incident is not None
        request = core.store.create_request(
            incident_id=incident.id, site=None, host="iis01", action="repair-store", args=(thumb,),
            target=thumb, requested_by="slack:UAPPROVER1", ttl=60,
        )  # fmt: skip
        approved, result = await asyncio.wait_for(press(core, f"act:{request.token}"), LATEST)
        assert approved.title.startswith("Approved by slack:UAPPROVER1")
        assert trickling.hostile == 1  # the repair itself was held, not only the recheck
        why = f"iis01: repair-store did not finish within {DEADLINE:g} s and was stopped."
        assert result.title == "repair-store on iis01 failed"
        assert why in " ".join((result.title, *result.lines))

        after = core.store.request(request.token)
        assert after is not None
        assert (after.state, after.result) == ("failed", why)
        acted = [t for t in core.store.transitions(incident.id) if t.step is Step.ACTED]
        assert [t.reason for t in acted] == [f"repair-store {thumb} on iis01 failed: {why}"]

        await deliver_due(core)
        card = chat.delivered[-1].reply
        assert card.incident_id == incident.id
        assert any(why in line for line in card.lines), card.lines
        assert all(c.key_state != "ok" for c in trickling.sim.model.certs if c.thumbprint == thumb)
        core.close()

    asyncio.run(scenario())


def test_a_second_action_on_the_host_runs_while_an_approved_one_is_stuck(
    lab: Lab, tmp_path: Path, trickling: HostileWinRM
) -> None:
    async def scenario() -> None:
        core, _chat = core_for(lab, tmp_path, trickling)
        thumb = broken_thumbprint(trickling)
        request = core.store.create_request(
            incident_id=None, site="www", host="iis01", action="repair-store", args=(thumb,),
            target=thumb, requested_by="slack:UAPPROVER1", ttl=60,
        )  # fmt: skip
        outcome = await core.dispatcher.press(Press(APPROVER, CHANNEL, f"act:{request.token}"))
        assert outcome.follow_up is not None
        stuck = asyncio.ensure_future(outcome.follow_up())
        for _ in range(200):
            if trickling.hostile:
                break
            await asyncio.sleep(0.01)
        assert trickling.hostile == 1

        audit = await asyncio.wait_for(core.hosts.run("iis01", "audit-tasks", ()), LATEST)
        assert audit.summary.startswith("iis01:")
        assert not stuck.done()  # the audit did not wait behind the repair

        result = await asyncio.wait_for(stuck, LATEST)
        assert result.title == "repair-store on iis01 failed"
        after = core.store.request(request.token)
        assert after is not None
        assert after.state == "failed"
        core.close()

    asyncio.run(scenario())
