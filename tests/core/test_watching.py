"""The bot watching by itself, under a clock the test moves: a site breaks, the alert arrives
once, the host is diagnosed, a press repairs it, and the card ends resolved; with thresholds,
retries, re-notification, mutes, maintenance, flapping and the digest."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.app import Core, build_core
from bot.chat.base import DeliveryKind
from bot.config import parse_config
from bot.core.model import IncidentState, Step
from bot.probe import StaticResolver
from tests.fakes.bot import APPROVER, press
from tests.fakes.clock import ManualClock
from tests.fakes.destination import RecordingDestination
from tests.fakes.iis import SimulatedIIS
from tests.fakes.tls import Behaviour, Lab

RESOLVER = StaticResolver({"www.example.com": "127.0.0.1", "localhost": "127.0.0.1"})


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


async def start(config_text: str, tmp_path: Path, clock: ManualClock) -> tuple[Core, RecordingDestination]:
    core = build_core(
        parse_config(config_text, "test.toml"), database=str(tmp_path / "db"), resolver=RESOLVER, clock=clock
    )
    chat = RecordingDestination()
    core.attach(chat)
    return core, chat


async def deliver_due(core: Core) -> None:
    for platform in core.destinations:
        while await core.outbox.run_once(platform):
            pass


async def round_of(core: Core, site: str = "www") -> None:
    await core.watcher.probe_site(site)
    await core.watcher.idle()
    await deliver_due(core)


def lab_site(lab: Lab, endpoint_port: int, extra: str = "") -> str:
    return (
        f'[[sites]]\nname = "shop"\nurl = "https://localhost:{endpoint_port}/"\nca_file = "{lab.ca_file}"\n'
        f"timeout = 3\n{extra}"
        '[policy]\napprovers = ["slack:UAPPROVER1"]\n'
    )


def test_a_broken_key_link_becomes_one_card_that_a_press_repairs_and_resolves(
    iis: SimulatedIIS, tmp_path: Path
) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        core, chat = await start(iis.config(), tmp_path, clock)
        await round_of(core)
        assert core.store.open_incidents() == []  # one failure is not an incident yet
        job = core.watcher.scheduler.get_job("probe:www")
        assert job is None  # the scheduler is not started in this test; probe_site runs the same code

        clock.advance(30)
        await round_of(core)
        [incident] = core.store.open_incidents()
        assert incident.problem == "tls_handshake_reset"
        assert incident.failing_since is not None
        assert incident.opened_at - incident.failing_since == dt.timedelta(seconds=30)
        assert incident.diagnosis, "the host was diagnosed on opening"
        assert chat.kinds()[0] == "new"
        assert all(k == "edit" for k in chat.kinds()[1:])
        card = chat.delivered[-1].reply
        assert card.incident_id == incident.id
        assert "Repair store" in [b.label for b in card.buttons]
        assert any("Missing stored keyset" in line or "missing" in line.lower() for line in card.lines)

        clock.advance(300)
        await round_of(core)
        assert len(core.store.open_incidents()) == 1  # still the same incident: no second card
        assert chat.kinds().count("new") == 1

        repair = next(b for b in card.buttons if b.label == "Repair store")
        _approved, result = await press(core, repair.token, who=APPROVER)
        await deliver_due(core)
        assert result.resolved
        final = core.store.incident(incident.id)
        assert final is not None
        assert final.state is IncidentState.RESOLVED
        assert final.resolution is not None
        assert "after repair-store" in final.resolution
        steps = [t.step for t in core.store.transitions(incident.id)]
        assert steps[0] is Step.DETECTED
        assert Step.DIAGNOSED in steps
        assert Step.APPROVED in steps
        assert Step.ACTED in steps
        assert steps[-1] is Step.RESOLVED
        last = chat.delivered[-1]
        assert last.kind is DeliveryKind.EDIT
        assert last.reply.resolved
        assert last.reply.title.startswith("Resolved: ")
        assert not last.reply.buttons
        core.close()

    run(scenario)


def test_an_unacknowledged_incident_is_renotified_every_four_hours_until_acked(lab: Lab, tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        endpoint = lab.serve("localhost", behaviour=Behaviour.RESET_IN_HANDSHAKE)
        core, chat = await start(lab_site(lab, endpoint.port), tmp_path, clock)
        await round_of(core, "shop")
        clock.advance(30)
        await round_of(core, "shop")
        [incident] = core.store.open_incidents()
        clock.advance(3 * 3600)
        await core.watcher.tick()
        await deliver_due(core)
        assert "thread" not in chat.kinds()
        clock.advance(3600 + 1)
        await core.watcher.tick()
        await deliver_due(core)
        assert chat.kinds().count("thread") == 1
        assert chat.delivered[-1].reply.title.startswith("Still open after 4 h")
        acked, why = core.incidents.ack(incident.id, "slack:UAPPROVER1")
        assert why is None
        assert acked is not None
        assert acked.state is IncidentState.ACKED
        clock.advance(5 * 3600)
        await core.watcher.tick()
        await deliver_due(core)
        assert chat.kinds().count("thread") == 1
        core.close()

    run(scenario)


def test_a_muted_site_opens_its_incident_silently_and_announces_it_when_the_mute_ends(lab: Lab, tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        endpoint = lab.serve("localhost", behaviour=Behaviour.RESET_IN_HANDSHAKE)
        core, chat = await start(lab_site(lab, endpoint.port, "failure_threshold = 1\n"), tmp_path, clock)
        core.store.mute("shop", clock.now + dt.timedelta(hours=1), "slack:UAPPROVER1")
        await round_of(core, "shop")
        [incident] = core.store.open_incidents()
        assert not incident.announced
        assert chat.delivered == []
        clock.advance(1800)
        await core.watcher.tick()
        await deliver_due(core)
        assert chat.delivered == []
        clock.advance(1801)
        await core.watcher.tick()
        await deliver_due(core)
        assert chat.kinds() == ["new"]
        assert core.store.transitions(incident.id)[-1].step is Step.ANNOUNCED
        core.close()

    run(scenario)


def test_a_maintenance_window_holds_back_alerts_but_not_probes(lab: Lab, tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        endpoint = lab.serve("localhost", behaviour=Behaviour.RESET_IN_HANDSHAKE)
        window = (
            '[[maintenance]]\nsites = ["*"]\nreason = "patch night"\n'
            'start = "2026-12-01T08:00:00Z"\nend = "2026-12-01T09:00:00Z"\n'
        )
        core, chat = await start(lab_site(lab, endpoint.port, "failure_threshold = 1\n") + window, tmp_path, clock)
        await round_of(core, "shop")
        assert core.store.last_results("shop"), "probes go on in a window"
        assert len(core.store.open_incidents()) == 1
        assert chat.delivered == []
        clock.advance(3600)
        await core.watcher.tick()
        await deliver_due(core)
        assert chat.kinds() == ["new"]
        core.close()

    run(scenario)


def test_a_site_that_heals_by_itself_is_resolved_and_says_so(lab: Lab, tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        endpoint = lab.serve("localhost", behaviour=Behaviour.RESET_IN_HANDSHAKE)
        core, chat = await start(lab_site(lab, endpoint.port, "success_threshold = 2\n"), tmp_path, clock)
        await round_of(core, "shop")
        clock.advance(30)
        await round_of(core, "shop")
        [incident] = core.store.open_incidents()
        endpoint.behaviour = Behaviour.OK
        clock.advance(300)
        await round_of(core, "shop")
        assert core.store.open_incidents(), "one good probe is not enough with success_threshold = 2"
        clock.advance(30)
        await round_of(core, "shop")
        final = core.store.incident(incident.id)
        assert final is not None
        assert final.state is IncidentState.RESOLVED
        assert final.resolution is not None
        assert "on its own" in final.resolution
        assert chat.delivered[-1].reply.resolved
        core.close()

    run(scenario)


def test_a_flapping_site_gets_one_flapping_incident_not_ten(lab: Lab, tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        endpoint = lab.serve("localhost")
        core, chat = await start(
            lab_site(lab, endpoint.port, 'failure_threshold = 1\ninterval = "1m"\nretry_interval = "5s"\n'),
            tmp_path,
            clock,
        )
        for _ in range(10):
            endpoint.behaviour = Behaviour.RESET_IN_HANDSHAKE
            await round_of(core, "shop")
            clock.advance(60)
            endpoint.behaviour = Behaviour.OK
            await round_of(core, "shop")
            clock.advance(60)
        incidents = core.store.incidents(limit=50)
        flapping = [i for i in incidents if i.problem == "flapping"]
        assert len(flapping) == 1
        assert len(incidents) <= 4
        assert flapping[0].is_open, "a flapping incident closes only after an hour without changes"
        assert chat.kinds().count("new") == len(incidents)
        core.close()

    run(scenario)


def test_a_probe_that_raises_is_recorded_as_probe_error_and_the_loop_goes_on(lab: Lab, tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        endpoint = lab.serve("localhost")
        core, _chat = await start(lab_site(lab, endpoint.port), tmp_path, clock)

        async def broken(_site: object) -> list[object]:
            raise RuntimeError("boom")

        core.watcher.prober = type("Broken", (), {"probe_site": staticmethod(broken)})()  # type: ignore[assignment]
        observation = await core.watcher.probe_site("shop")
        assert observation is not None
        assert observation.failing
        [result] = core.store.last_results("shop")
        assert [p.code for p in result.problems] == ["probe_error"]
        core.close()

    run(scenario)


def test_the_digest_says_all_quiet_when_nothing_is_wrong(lab: Lab, tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        endpoint = lab.serve("localhost", days_left=23)
        core, chat = await start(lab_site(lab, endpoint.port), tmp_path, clock)
        await round_of(core, "shop")
        await core.watcher.digest()
        await deliver_due(core)
        [digest] = chat.delivered
        assert digest.reply.title.startswith("All quiet: 1 site, nearest expiry shop in 2")
        core.close()

    run(scenario)


def test_a_failed_probe_is_retried_after_the_retry_interval_not_a_whole_interval(lab: Lab, tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        endpoint = lab.serve("localhost", behaviour=Behaviour.RESET_IN_HANDSHAKE)
        core, _chat = await start(lab_site(lab, endpoint.port, 'retry_interval = "30s"\n'), tmp_path, clock)
        await core.watcher.start()
        try:
            job = core.watcher.scheduler.get_job("probe:shop")
            assert job is not None
            assert job.trigger.interval == dt.timedelta(minutes=5)
            job.modify(next_run_time=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=200))
            observation = await core.watcher.probe_site("shop")
            await core.watcher.idle()
            assert observation is not None
            assert observation.retry_in == 30
            job = core.watcher.scheduler.get_job("probe:shop")
            soon = (job.next_run_time - dt.datetime.now(job.next_run_time.tzinfo)).total_seconds()
            assert 20 < soon <= 30
        finally:
            await core.watcher.stop()
            core.close()

    run(scenario)


def test_an_incident_of_a_site_removed_from_the_config_is_closed_at_start_and_says_why(
    lab: Lab, tmp_path: Path
) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        endpoint = lab.serve("localhost", behaviour=Behaviour.RESET_IN_HANDSHAKE)
        core, _chat = await start(lab_site(lab, endpoint.port, "failure_threshold = 1\n"), tmp_path, clock)
        await round_of(core, "shop")
        [incident] = core.store.open_incidents()
        core.close()
        other = lab_site(lab, endpoint.port).replace('name = "shop"', 'name = "blog"')
        restarted, _chat = await start(other, tmp_path, clock)
        closed = restarted.store.incident(incident.id)
        assert closed is not None
        assert closed.state is IncidentState.RESOLVED
        assert closed.resolution == "Closed without verification: shop is no longer in the config."
        restarted.close()

    run(scenario)


def test_a_real_failure_after_a_probe_error_raises_the_severity_and_renotifies(lab: Lab, tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        endpoint = lab.serve("localhost", behaviour=Behaviour.RESET_IN_HANDSHAKE)
        core, chat = await start(lab_site(lab, endpoint.port, "failure_threshold = 1\n"), tmp_path, clock)
        real = core.watcher.prober

        async def broken(_site: object) -> list[object]:
            raise RuntimeError("boom")

        core.watcher.prober = type("Broken", (), {"probe_site": staticmethod(broken)})()  # type: ignore[assignment]
        await round_of(core, "shop")
        [incident] = core.store.open_incidents()
        assert (incident.problem, incident.severity.value) == ("probe_error", "warning")
        core.watcher.prober = real
        clock.advance(300)
        await round_of(core, "shop")
        [raised] = core.store.open_incidents()
        assert raised.id == incident.id
        assert (raised.problem, raised.severity.value) == ("tls_handshake_reset", "critical")
        assert core.store.transitions(incident.id)[-1].step is Step.ESCALATED
        assert chat.kinds() == ["new", "edit", "thread"]
        core.close()

    run(scenario)
