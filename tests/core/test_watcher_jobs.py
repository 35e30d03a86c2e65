"""The watcher's other jobs: metrics after a round, the heartbeat ping, the scheduled host check,
the digest's schedule, and auto_heal from the scheduler."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from bot.core.model import IncidentState, RequestState
from bot.web import serve_app
from host_actions.simulator.model import HostModel
from host_actions.simulator.scenarios import before_renewal_host
from tests.core.test_watching import deliver_due, lab_site, round_of, run, start
from tests.fakes.clock import ManualClock
from tests.fakes.iis import SimulatedIIS
from tests.fakes.tls import Behaviour, Lab


def test_a_round_of_probes_shows_in_the_metrics_with_blackbox_style_labels(lab: Lab, tmp_path: Path) -> None:
    async def scenario() -> None:
        endpoint = lab.serve("localhost", days_left=30)
        core, _chat = await start(lab_site(lab, endpoint.port), tmp_path, ManualClock())
        await round_of(core, "shop")
        text = core.metrics.render().decode()
        assert 'certops_probe_success{address="127.0.0.1",site="shop",vantage="local",via="public"} 1.0' in text
        assert 'certops_probe_duration_seconds{address="127.0.0.1",site="shop",vantage="local",via="public"}' in text
        expiry = next(line for line in text.splitlines() if line.startswith("certops_cert_expiry_timestamp_seconds{"))
        not_after = float(expiry.rsplit(" ", 1)[1])
        assert 29 * 86400 < not_after - dt.datetime.now(dt.UTC).timestamp() < 31 * 86400
        assert "certops_incidents_open 0.0" in text
        endpoint.behaviour = Behaviour.RESET_IN_HANDSHAKE
        await round_of(core, "shop")
        text = core.metrics.render().decode()
        assert 'certops_probe_success{address="127.0.0.1",site="shop",vantage="local",via="public"} 0.0' in text
        assert 'certops_probe_problems_total{code="tls_handshake_reset",site="shop",vantage="local"} 1.0' in text
        core.close()

    run(scenario)


def test_the_heartbeat_url_is_pinged_after_every_complete_round_and_its_failure_is_not_fatal(
    lab: Lab, tmp_path: Path
) -> None:
    async def scenario() -> None:
        pings: list[str] = []
        answer = {"status": 200}

        async def ping(request: web.Request) -> web.Response:
            pings.append(request.path)
            return web.Response(status=answer["status"])

        app = web.Application()
        app.add_routes([web.get("/ping/{uuid}", ping)])
        runner, port = await serve_app(app, "127.0.0.1", 0)
        try:
            endpoint = lab.serve("localhost")
            text = lab_site(lab, endpoint.port).replace(
                "[policy]", f'[bot]\nheartbeat_url = "http://127.0.0.1:{port}/ping/0f2d"\n[policy]'
            )
            core, _chat = await start(text, tmp_path, ManualClock())
            await round_of(core, "shop")
            await round_of(core, "shop")
            assert pings == ["/ping/0f2d", "/ping/0f2d"]
            answer["status"] = 500
            await round_of(core, "shop")
            assert len(pings) == 3
            assert "certops_heartbeat_failures_total 1.0" in core.metrics.render().decode()
            core.close()
        finally:
            await runner.cleanup()

    run(scenario)


def broken_but_not_yet_served() -> HostModel:
    """A renewal put a certificate with a broken key into the store, but nothing serves it yet."""
    model = before_renewal_host()
    old = model.certs[0]
    model.renewals[0].data["History"] = [model.history_entry(True, old.thumbprint, days_ago=5)]
    model.tasks = [t for t in model.tasks if "SSL-PostRenew" not in t.full_path]  # no legacy task here
    names = ["www.example.com", "example.com"]
    new = model.add_cert(names, days_old=0, key_state="missing_keyset", friendly_name="new")
    # win-acme records the run as a success with the new thumbprint (the newest certificate is the renewal's)
    model.renewals[0].data["History"].append(model.history_entry(True, new.thumbprint, days_ago=0))
    return model


def test_the_scheduled_host_check_opens_the_hosts_incident_with_buttons_and_closes_it_when_fixed(
    iis: SimulatedIIS, tmp_path: Path
) -> None:
    async def scenario() -> None:
        with iis.winrm.lock:
            iis.winrm.model.__dict__.update(broken_but_not_yet_served().__dict__)
        core, chat = await start(iis.config(), tmp_path, ManualClock())
        await core.watcher.check_host("iis01")
        await deliver_due(core)
        [incident] = core.store.open_incidents("host:iis01")
        assert incident.problem == "newest_cert_key_unusable"
        assert incident.site is None
        requests = core.store.requests_for(incident.id)
        assert "repair-store" in [r.action for r in requests if r.state is RequestState.PENDING]
        assert chat.kinds()[0] == "new"
        assert "Repair store" in [b.label for b in chat.delivered[-1].reply.buttons]
        with iis.winrm.lock:
            for cert in iis.winrm.model.certs:
                cert.key_state = "ok"
        await core.watcher.check_host("iis01")
        await deliver_due(core)
        closed = core.store.incident(incident.id)
        assert closed is not None
        assert closed.state is IncidentState.RESOLVED
        assert chat.delivered[-1].reply.resolved
        core.close()

    run(scenario)


def test_the_digest_is_scheduled_at_digest_at_in_the_configured_time_zone(lab: Lab, tmp_path: Path) -> None:
    async def scenario() -> None:
        endpoint = lab.serve("localhost")
        text = lab_site(lab, endpoint.port).replace(
            "[policy]", '[bot]\ndigest_at = "09:30"\ntimezone = "Asia/Tokyo"\n[policy]'
        )
        core, _chat = await start(text, tmp_path, ManualClock())
        await core.watcher.start()
        try:
            job = core.watcher.scheduler.get_job("digest")
            assert job is not None
            fire = job.next_run_time
            assert (fire.hour, fire.minute, str(fire.tzinfo)) == (9, 30, "Asia/Tokyo")
            assert core.watcher.scheduler.get_job("tick") is not None
        finally:
            await core.watcher.stop()
            core.close()

    run(scenario)


def test_no_digest_job_exists_when_digest_at_is_empty(lab: Lab, tmp_path: Path) -> None:
    async def scenario() -> None:
        endpoint = lab.serve("localhost")
        text = lab_site(lab, endpoint.port).replace("[policy]", '[bot]\ndigest_at = ""\n[policy]')
        core, _chat = await start(text, tmp_path, ManualClock())
        await core.watcher.start()
        try:
            assert core.watcher.scheduler.get_job("digest") is None
        finally:
            await core.watcher.stop()
            core.close()

    run(scenario)


def test_auto_heal_repairs_from_the_scheduler_when_the_diagnosis_is_unambiguous(
    iis: SimulatedIIS, tmp_path: Path
) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        core, chat = await start(iis.config(policy='auto_heal = ["repair-store"]\n'), tmp_path, clock)
        await round_of(core)
        clock.advance(30)
        await round_of(core)
        await asyncio.sleep(0)
        [incident] = core.store.incidents(limit=5)
        assert incident.state is IncidentState.RESOLVED, core.store.transitions(incident.id)
        assert incident.resolution is not None
        assert "after repair-store" in incident.resolution
        assert all(c.key_state == "ok" for c in iis.model.certs)
        actors = [t.actor for t in core.store.transitions(incident.id)]
        assert "policy:auto_heal" in actors
        assert chat.delivered[-1].reply.resolved
        core.close()

    run(scenario)


def test_the_metrics_page_parses_as_prometheus_text_with_every_named_family(lab: Lab, tmp_path: Path) -> None:
    async def scenario() -> None:
        endpoint = lab.serve("localhost")
        core, _chat = await start(lab_site(lab, endpoint.port), tmp_path, ManualClock())
        await round_of(core, "shop")
        families = {f.name: f for f in text_string_to_metric_families(core.metrics.render().decode())}
        for name in (
            "certops_probe_success",
            "certops_probe_duration_seconds",
            "certops_cert_expiry_timestamp_seconds",
            "certops_incidents_open",
            "certops_outbox_pending",
            "certops_outbox_failed",
            "certops_scheduler_lag_seconds",
            "certops_scheduler_skipped",
            "certops_host_actions",
            "certops_probe_problems",
        ):
            assert name in families, name
        [success] = families["certops_probe_success"].samples
        assert success.labels == {"site": "shop", "via": "public", "address": "127.0.0.1", "vantage": "local"}
        assert success.value == 1.0
        assert families["certops_probe_success"].type == "gauge"
        assert families["certops_outbox_failed"].type == "counter"
        core.close()

    run(scenario)


def test_a_round_asked_for_on_a_replica_that_does_not_lead_is_run_soon_by_the_one_that_does(
    lab: Lab, tmp_path: Path
) -> None:
    """Agents' results and presses land on any replica; one whose scheduler does not run asks
    through the store, and the leader's scheduler moves the site's next round up."""

    async def scenario() -> None:
        endpoint = lab.serve("localhost")
        core, _chat = await start(lab_site(lab, endpoint.port, 'interval = "1h"\n'), tmp_path, ManualClock())
        assert not core.watcher.started  # built, never started: as on a replica that does not lead
        assert core.agents is not None
        # an agent's results changed the verdict here (the desk runs on a worker thread)
        await asyncio.to_thread(core.agents.reschedule, "shop", 1.0)
        assert list(core.store.take_probe_soon()) == ["shop"]
        core.flows.reschedule("shop", 1.0)  # a follow-up's retry, on the event loop: written on a thread
        for _ in range(100):
            await asyncio.sleep(0.01)
            if not core.watcher._tasks:
                break

        assert core.new_watcher is not None
        leader = core.watcher = core.new_watcher()  # this replica's next term
        await leader.start()
        try:
            job = leader.scheduler.get_job("probe:shop")
            assert job is not None
            job.modify(next_run_time=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
            assert leader.scheduler.get_job("asked") is not None
            await leader.take_probe_requests()
            moved = leader.scheduler.get_job("probe:shop")
            assert moved is not None
            assert moved.next_run_time <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
            assert core.store.take_probe_soon() == {}  # handed out once
        finally:
            await leader.stop()
            core.close()

    run(scenario)
