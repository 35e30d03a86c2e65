"""Approval buttons: checked again at press time, run exactly once, and every decision audited."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.app import Core
from bot.store import ActionRequest
from commands.model import Press, Principal, Tone
from host_actions.simulator import WinRMSimulator
from host_actions.simulator.scenarios import incident_host
from tests.fakes.bot import (
    APPROVER,
    BYSTANDER,
    CHANNEL,
    SECOND_APPROVER,
    SIM_PASSWORD_ENV,
    audit_events,
    host_config,
    make_core,
    open_incident,
    press,
    resolve_incident,
)
from tests.fakes.tls import Lab


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[WinRMSimulator]:
    with WinRMSimulator(incident_host()) as simulator:
        monkeypatch.setenv(SIM_PASSWORD_ENV, simulator.password)
        yield simulator


def core_for(lab: Lab, tmp_path: Path, sim: WinRMSimulator, policy: str = "") -> Core:
    text = (
        f'[[sites]]\nname = "www"\nurl = "https://localhost:1/"\nca_file = "{lab.ca_file}"\nhost = "iis01"\n'
        + host_config(sim.url, sim.username)
        + '[policy]\napprovers = ["slack:UAPPROVER1", "slack:UAPPROVER2"]\n'
        + policy
    )
    return make_core(text, tmp_path)


def broken_thumbprint(sim: WinRMSimulator) -> str:
    return next(c.thumbprint for c in sim.model.certs if c.key_state != "ok")


def repair_request(core: Core, sim: WinRMSimulator, *, ttl: float = 60, incident: str | None = None) -> ActionRequest:
    thumb = broken_thumbprint(sim)
    return core.store.create_request(
        incident_id=incident, site="www", host="iis01", action="repair-store", args=(thumb,),
        target=thumb, requested_by="slack:UAPPROVER1", ttl=ttl,
    )  # fmt: skip


def audit_tail(core: Core, n: int) -> list[tuple[str, str, str]]:
    return audit_events(core, "actor", "event", "outcome")[-n:]


def test_an_approved_repair_runs_once_on_the_host(lab: Lab, tmp_path: Path, sim: WinRMSimulator) -> None:
    async def scenario() -> None:
        core = core_for(lab, tmp_path, sim)
        request = repair_request(core, sim)
        first, result = await press(core, f"act:{request.token}")
        assert first.title.startswith("Approved by slack:UAPPROVER1. Running repair-store on iis01")
        assert result.title == "repair-store on iis01: done"
        assert all(c.key_state == "ok" for c in sim.model.certs)
        [again] = await press(core, f"act:{request.token}", who=SECOND_APPROVER)
        assert (again.title, again.private) == ("repair-store already ran on iis01.", True)
        assert audit_tail(core, 3) == [
            ("slack:UAPPROVER1", "approve", "approved"),
            ("certops", "run", "ok"),
            ("slack:UAPPROVER2", "press", "refused"),
        ]

    asyncio.run(scenario())


def test_two_presses_at_the_same_moment_run_the_action_once(lab: Lab, tmp_path: Path, sim: WinRMSimulator) -> None:
    async def scenario() -> None:
        core = core_for(lab, tmp_path, sim)
        request = repair_request(core, sim)
        outcomes = await asyncio.gather(
            core.dispatcher.press(_press(APPROVER, request)), core.dispatcher.press(_press(SECOND_APPROVER, request))
        )
        runs = [o for o in outcomes if o.follow_up is not None]
        assert len(runs) == 1
        await runs[0].follow_up()  # type: ignore[misc]
        assert sim.scripts_run.count("repair_store") == 1

    asyncio.run(scenario())


def test_a_bystander_is_refused_politely_and_nothing_runs(lab: Lab, tmp_path: Path, sim: WinRMSimulator) -> None:
    async def scenario() -> None:
        core = core_for(lab, tmp_path, sim)
        request = repair_request(core, sim)
        [reply] = await press(core, f"act:{request.token}", who=BYSTANDER)
        assert (reply.title, reply.private) == ("Sorry, you are not on the approver list for repair-store.", True)
        assert sim.requests == []
        assert core.store.request(request.token).state == "pending"  # type: ignore[union-attr]
        assert audit_tail(core, 1) == [("slack:UBYSTANDER", "press", "refused")]

    asyncio.run(scenario())


def test_an_expired_button_is_refused_with_the_way_to_get_fresh_ones(
    lab: Lab, tmp_path: Path, sim: WinRMSimulator
) -> None:
    async def scenario() -> None:
        core = core_for(lab, tmp_path, sim)
        request = repair_request(core, sim, ttl=-1)
        [reply] = await press(core, f"act:{request.token}")
        assert reply.title.startswith("This button expired at ")
        assert reply.title.endswith("Run /ssl heal www for fresh ones.")
        assert sim.requests == []

    asyncio.run(scenario())


def test_a_press_without_a_known_user_cannot_approve(lab: Lab, tmp_path: Path, sim: WinRMSimulator) -> None:
    async def scenario() -> None:
        core = core_for(lab, tmp_path, sim)
        request = repair_request(core, sim)
        [reply] = await press(core, f"act:{request.token}", who=Principal("line", None))
        assert "approve in a 1:1 chat with the bot" in reply.title
        assert sim.requests == []

    asyncio.run(scenario())


def test_two_person_actions_wait_for_a_different_second_approver(lab: Lab, tmp_path: Path, sim: WinRMSimulator) -> None:
    async def scenario() -> None:
        core = core_for(lab, tmp_path, sim, policy='two_person = ["repair-store"]\n')
        request = repair_request(core, sim)
        [first] = await press(core, f"act:{request.token}")
        assert first.title == "Approved by Ada (1 of 2); waiting for a different approver."
        [same] = await press(core, f"act:{request.token}")
        assert same.title == "Approved by Ada (1 of 2); waiting for a different approver."
        assert sim.requests == []
        _, result = await press(core, f"act:{request.token}", who=SECOND_APPROVER)
        assert result.title == "repair-store on iis01: done"

    asyncio.run(scenario())


def test_a_button_for_a_resolved_incident_does_nothing(lab: Lab, tmp_path: Path, sim: WinRMSimulator) -> None:
    async def scenario() -> None:
        core = core_for(lab, tmp_path, sim)
        incident = open_incident(core, "www", "reset")
        request = repair_request(core, sim, incident=incident.id)
        resolve_incident(core, incident.id)
        [reply] = await press(core, f"act:{request.token}")
        assert reply.title == f"{incident.id} is already resolved; nothing to do."
        assert sim.requests == []

    asyncio.run(scenario())


def test_an_unknown_or_forged_token_is_refused(lab: Lab, tmp_path: Path, sim: WinRMSimulator) -> None:
    async def scenario() -> None:
        core = core_for(lab, tmp_path, sim)
        [reply] = await press(core, "act:repair-store;iis01;ABCDEF")
        assert reply.title == "This button is not one certops knows; it may belong to an older setup."
        assert reply.tone is Tone.WARNING
        assert sim.requests == []

    asyncio.run(scenario())


def _press(who: Principal, request: ActionRequest) -> Press:
    return Press(who, CHANNEL, f"act:{request.token}")


def test_buttons_for_different_targets_of_one_action_all_stay_valid(
    lab: Lab, tmp_path: Path, sim: WinRMSimulator
) -> None:
    async def scenario() -> None:
        core = core_for(lab, tmp_path, sim)
        first = core.store.create_request(
            incident_id=None, site=None, host="iis01", action="retire-task", args=("\\A",),
            target="\\A", requested_by="slack:UAPPROVER1", ttl=60,
        )  # fmt: skip
        second = core.store.create_request(
            incident_id=None, site=None, host="iis01", action="retire-task", args=("\\B",),
            target="\\B", requested_by="slack:UAPPROVER1", ttl=60,
        )  # fmt: skip
        again = core.store.create_request(
            incident_id=None, site=None, host="iis01", action="retire-task", args=("\\B",),
            target="\\B", requested_by="slack:UAPPROVER1", ttl=60,
        )  # fmt: skip
        states = [core.store.request(r.token).state for r in (first, second, again)]  # type: ignore[union-attr]
        assert states == ["pending", "superseded", "pending"]

    asyncio.run(scenario())


def test_a_second_button_for_an_action_already_running_is_refused(
    lab: Lab, tmp_path: Path, sim: WinRMSimulator
) -> None:
    async def scenario() -> None:
        core = core_for(lab, tmp_path, sim)
        running = repair_request(core, sim)
        assert core.store.start_request(running.token) == "started"
        fresh = core.store.create_request(
            incident_id=None, site="www", host="iis01", action="repair-store", args=running.args,
            target=running.target, requested_by="slack:UAPPROVER2", ttl=60,
        )  # fmt: skip
        [reply] = await press(core, f"act:{fresh.token}")
        assert reply.title == "repair-store is already running on iis01; wait for its result."
        assert sim.requests == []

    asyncio.run(scenario())


def test_a_run_cut_short_by_a_restart_is_marked_failed_and_never_runs_again(
    lab: Lab, tmp_path: Path, sim: WinRMSimulator
) -> None:
    async def scenario() -> None:
        core = core_for(lab, tmp_path, sim)
        request = repair_request(core, sim)
        assert core.store.start_request(request.token) == "started"
        core.close()  # the process dies while the action runs

        restarted = core_for(lab, tmp_path, sim)
        after = restarted.store.request(request.token)
        assert after is not None
        assert (after.state, after.result) == ("failed", "interrupted: certops stopped while it ran")
        assert audit_tail(restarted, 1) == [("certops", "run", "failed")]
        [reply] = await press(restarted, f"act:{request.token}")
        assert reply.title == (
            "repair-store on iis01 was interrupted when certops stopped; the host may or may not have changed: "
            "run /ssl heal www to see where it stands."
        )
        assert sim.requests == []

    asyncio.run(scenario())
