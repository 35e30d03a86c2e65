"""/ssl heal <site> shows that site's card: what the host shows beside it (a legacy task,
another site's renewal) goes on the host's own card, whose buttons outlive the site's incident."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.app import build_core
from bot.config import parse_config
from bot.core.model import Cause, RequestState
from bot.core.services import FindingView
from bot.probe import StaticResolver
from commands.render import button_for
from tests.fakes.bot import APPROVER, press, say
from tests.fakes.clock import ManualClock
from tests.fakes.iis import SimulatedIIS

RESOLVER = StaticResolver({"www.example.com": "127.0.0.1"})


def test_heal_keeps_the_legacy_task_off_the_site_card_and_its_button_outlives_the_site_incident(
    iis: SimulatedIIS, tmp_path: Path
) -> None:
    async def scenario() -> None:
        core = build_core(
            parse_config(iis.config(), "test.toml"), database=str(tmp_path / "db"), resolver=RESOLVER,
            clock=ManualClock(),
        )  # fmt: skip
        _, card = await say(core, "heal www", APPROVER)
        assert card.incident_id
        requests = [core.store.request(b.token.removeprefix("act:")) for b in card.buttons]
        by_action = {r.action: r for r in requests if r is not None}
        retire = by_action["retire-task"]
        assert by_action["repair-store"].incident_id == card.incident_id  # www's own
        # a warning: no host card of its own is opened for it, and it is not www's incident's either
        assert (retire.site, retire.incident_id) == (None, None)
        assert core.store.open_incidents("host:iis01") == []
        lines = list(card.lines)
        also = next(i for i, line in enumerate(lines) if line.startswith("Also on iis01, not www's"))
        assert any("SSL-PostRenew" in line for line in lines[also + 1 :])
        assert not any("SSL-PostRenew" in line for line in lines[:also])
        # www heals; the host's task is still there, and so is its button
        core.incidents.resolve(card.incident_id, "verified from outside", Cause.PROBE)
        _, result = await press(core, f"act:{retire.token}", APPROVER)
        assert "already resolved" not in result.title
        done = core.store.request(retire.token)
        assert done is not None
        assert done.state is RequestState.DONE, result
        core.close()

    asyncio.run(scenario())


def test_a_failing_legacy_task_found_by_heal_opens_the_host_card_even_while_the_site_has_one(
    iis: SimulatedIIS, tmp_path: Path
) -> None:
    task = next(t for t in iis.model.tasks if "SSL-PostRenew" in t.full_path)
    task.actions[0].arguments = "-NoProfile -File C:\\Windows\\System32\\drivers\\etc\\hosts"  # exists
    task.last_result = 1

    async def scenario() -> None:
        core = build_core(
            parse_config(iis.config(), "test.toml"), database=str(tmp_path / "db"), resolver=RESOLVER,
            clock=ManualClock(),
        )  # fmt: skip
        _, card = await say(core, "heal www", APPROVER)
        [host_card] = core.store.open_incidents("host:iis01")
        retire = next(
            r
            for b in card.buttons
            if (r := core.store.request(b.token.removeprefix("act:"))) and r.action == "retire-task"
        )
        assert retire.incident_id == host_card.id
        assert any(host_card.id in line for line in card.lines)
        # www's own problem stays on www's card only
        assert not any(
            "newest_cert_key_unusable" in line or "cannot be used for TLS" in line for line in host_card.details
        )
        core.close()

    asyncio.run(scenario())


def test_two_renewals_give_two_buttons_a_person_can_tell_apart(iis: SimulatedIIS, tmp_path: Path) -> None:
    async def scenario() -> None:
        core = build_core(
            parse_config(iis.config(), "test.toml"), database=str(tmp_path / "db"), resolver=RESOLVER,
            clock=ManualClock(),
        )  # fmt: skip
        findings = [
            FindingView("renewal_lacks_script_step", "warning", "no step", "add-post-renew-step", (rid,), (name,))
            for rid, name in (("R1www", "www.example.com"), ("R2api", "api.example.com"))
        ]
        requests, _ = await core.flows.propose(findings, host="iis01", site=None, incident_id=None, requester="x")
        assert [button_for(r).label for r in requests] == ["Add post-renew step (www)", "Add post-renew step (api)"]
        assert [r.target for r in requests] == ["R1www (www.example.com)", "R2api (api.example.com)"]
        assert [r.args for r in requests] == [("R1www",), ("R2api",)]  # what runs is unchanged
        core.close()

    asyncio.run(scenario())
