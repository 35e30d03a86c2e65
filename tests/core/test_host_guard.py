"""The host guard: a diagnosis under way is joined, a fresh one reused, and anything that changes
the host (or is about to) makes the next one ask the host again. Counted on the WinRM simulator
that pywinrm really talks to."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from bot.config import parse_config
from bot.core.host_guard import HostGuard
from bot.services import HostActionRunner
from host_actions.errors import HostActionError
from host_actions.simulator import Faults, WinRMSimulator
from host_actions.simulator.scenarios import incident_host
from tests.fakes.bot import SIM_PASSWORD_ENV, host_config
from tests.fakes.clock import ManualClock


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[WinRMSimulator]:
    with WinRMSimulator(incident_host()) as simulator:
        monkeypatch.setenv(SIM_PASSWORD_ENV, simulator.password)
        yield simulator


def guard_for(sim: WinRMSimulator, clock: ManualClock | None = None) -> HostGuard:
    runner = HostActionRunner(parse_config(host_config(sim.url, sim.username)))
    return HostGuard(runner, clock=clock or ManualClock())


def inventory_reads(sim: WinRMSimulator) -> int:
    """Full inventories read from the host: a diagnosis or a renewals read each run the win-acme script."""
    return sim.scripts_run.count("winacme")


def broken(sim: WinRMSimulator) -> str:
    return next(c.thumbprint for c in sim.model.certs if c.key_state != "ok")


def test_ten_diagnoses_of_one_host_at_once_ask_the_host_once(sim: WinRMSimulator) -> None:
    async def scenario() -> None:
        guard = guard_for(sim)
        diagnoses = await asyncio.gather(*(guard.diagnose("iis01", None) for _ in range(10)))
        assert inventory_reads(sim) == 1
        assert sim.requests.count("Create") == 1
        assert len({d.findings for d in diagnoses}) == 1
        assert "newest_cert_key_unusable" in [f.code for f in diagnoses[0].findings]

    asyncio.run(scenario())


def test_a_diagnosis_under_a_minute_old_is_reused_and_an_older_one_is_repeated(sim: WinRMSimulator) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        guard = guard_for(sim, clock)
        first = await guard.diagnose("iis01", None)
        clock.advance(59)
        assert await guard.diagnose("iis01", None) == first
        assert inventory_reads(sim) == 1
        clock.advance(2)
        await guard.diagnose("iis01", None)
        assert inventory_reads(sim) == 2

    asyncio.run(scenario())


def test_a_host_action_makes_the_next_diagnosis_ask_the_host_again(sim: WinRMSimulator) -> None:
    async def scenario() -> None:
        guard = guard_for(sim)
        before = await guard.diagnose("iis01", None)
        assert "newest_cert_key_unusable" in [f.code for f in before.findings]
        outcome = await guard.run("iis01", "repair-store", (broken(sim),))
        assert outcome.ok
        after = await guard.diagnose("iis01", None)
        assert inventory_reads(sim) == 2
        assert "newest_cert_key_unusable" not in [f.code for f in after.findings]

    asyncio.run(scenario())


def test_after_forget_a_change_made_by_hand_is_seen(sim: WinRMSimulator) -> None:
    async def scenario() -> None:
        guard = guard_for(sim)
        await guard.diagnose("iis01", None)
        with sim.lock:
            for cert in sim.model.certs:
                cert.key_state = "ok"  # someone ran certutil on the host
        stale = await guard.diagnose("iis01", None)
        assert "newest_cert_key_unusable" in [f.code for f in stale.findings]  # reused, as asked
        guard.forget("iis01")
        fresh = await guard.diagnose("iis01", None)
        assert "newest_cert_key_unusable" not in [f.code for f in fresh.findings]
        assert inventory_reads(sim) == 2

    asyncio.run(scenario())


def test_a_diagnosis_started_before_a_change_is_not_kept_for_later(sim: WinRMSimulator) -> None:
    async def scenario() -> None:
        guard = guard_for(sim)
        early = asyncio.ensure_future(guard.diagnose("iis01", None))
        await asyncio.sleep(0)  # it is under way
        guard.forget("iis01")  # an approved change is about to run
        await early
        await guard.diagnose("iis01", None)
        assert inventory_reads(sim) == 2

    asyncio.run(scenario())


def test_the_scheduled_check_looks_afresh_and_the_others_reuse_what_it_read(sim: WinRMSimulator) -> None:
    async def scenario() -> None:
        guard = guard_for(sim)
        looking = guard.looking()
        await guard.diagnose("iis01", None)
        with sim.lock:
            for cert in sim.model.certs:
                cert.key_state = "ok"
        checked = await looking.diagnose("iis01", None)
        assert "newest_cert_key_unusable" not in [f.code for f in checked.findings]
        assert await guard.diagnose("iis01", None) == checked
        assert inventory_reads(sim) == 2

    asyncio.run(scenario())


def test_a_failed_diagnosis_reaches_everyone_waiting_and_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        with WinRMSimulator(incident_host(), faults=Faults(fault_on="Create")) as sim:
            monkeypatch.setenv(SIM_PASSWORD_ENV, sim.password)
            guard = guard_for(sim)
            outcomes = await asyncio.gather(*(guard.diagnose("iis01", None) for _ in range(3)), return_exceptions=True)
            assert all(isinstance(o, HostActionError) for o in outcomes)
            assert sim.requests.count("Create") == 1
            sim.faults.fault_on = None  # the host is back
            diagnosis = await guard.diagnose("iis01", None)
            assert "newest_cert_key_unusable" in [f.code for f in diagnosis.findings]

    asyncio.run(scenario())


def test_one_asker_giving_up_does_not_cancel_the_diagnosis_for_the_others(sim: WinRMSimulator) -> None:
    async def scenario() -> None:
        guard = guard_for(sim)
        impatient = asyncio.ensure_future(guard.diagnose("iis01", None))
        patient = asyncio.ensure_future(guard.diagnose("iis01", None))
        await asyncio.sleep(0)
        impatient.cancel()
        diagnosis = await patient
        assert impatient.cancelled()
        assert "newest_cert_key_unusable" in [f.code for f in diagnosis.findings]
        assert inventory_reads(sim) == 1

    asyncio.run(scenario())


def test_renewal_reads_are_joined_like_diagnoses(sim: WinRMSimulator) -> None:
    async def scenario() -> None:
        guard = guard_for(sim)
        lists = await asyncio.gather(*(guard.renewals("iis01") for _ in range(5)))
        assert inventory_reads(sim) == 1
        assert lists[0]
        assert all(found == lists[0] for found in lists)

    asyncio.run(scenario())
